// What a tool definition is: metadata, schemas, and one call into the store.
import type { ToolAnnotations } from '@modelcontextprotocol/server';
import type { z } from 'zod';
import type { CallContext } from '../domain/types.js';
import type { InventoryStore } from '../storage/store.js';

export type Scope = 'customer' | 'admin';

export interface ToolDefinition<In extends z.ZodObject = z.ZodObject, Out extends z.ZodObject = z.ZodObject> {
  name: string;
  title: string;
  description: string;
  /** customer tools are on every connection; admin tools only on admin connections. */
  scope: Scope;
  inputSchema: In;
  outputSchema: Out;
  annotations: Required<
    Pick<ToolAnnotations, 'readOnlyHint' | 'destructiveHint' | 'idempotentHint' | 'openWorldHint'>
  >;
  run(store: InventoryStore, ctx: CallContext, input: z.infer<In>): Promise<z.infer<Out>>;
  /** One line a person or a voice agent can read out. */
  summarize(output: z.infer<Out>): string;
}

export function defineTool<In extends z.ZodObject, Out extends z.ZodObject>(
  definition: ToolDefinition<In, Out>,
): ToolDefinition<In, Out> {
  return definition;
}

export const READ_ONLY = {
  readOnlyHint: true,
  destructiveHint: false,
  idempotentHint: true,
  openWorldHint: false,
} as const;
