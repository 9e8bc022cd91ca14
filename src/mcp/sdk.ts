// The one door to the MCP SDK from outside src/mcp: the server transports that src/transports wires up, and what a transport of our own needs.
export {
  isInitializeRequest,
  type JSONRPCMessage,
  type McpServer,
  parseJSONRPCMessage,
  type RequestId,
  SUPPORTED_PROTOCOL_VERSIONS,
  type Transport,
  type TransportSendOptions,
} from '@modelcontextprotocol/server';
export { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
