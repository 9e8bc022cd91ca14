// A test host for the MCP App, bundled for the browser: it renders the ui:// resource in a sandboxed frame under
// the CSP the resource declares and speaks to it through ext-apps' AppBridge, as the package's basic host does.
// Tool calls go to `window.mcp`, which the test relays to a real MCP client of a live stocklock.
import { AppBridge, PostMessageTransport } from '@modelcontextprotocol/ext-apps/app-bridge';

interface Csp {
  connectDomains?: string[];
  resourceDomains?: string[];
}

export interface Mount {
  html: string;
  csp: Csp;
  tool: { name: string; arguments: Record<string, unknown>; result: Record<string, unknown> };
  hostContext: Record<string, unknown>;
}

declare global {
  interface Window {
    /** Relayed to the test's MCP client. */
    mcp(method: string, params: unknown): Promise<Record<string, unknown>>;
    /** What the frame asked the host to open. */
    openedLinks: string[];
    /** What the frame last told the model (ui/update-model-context), as text. */
    modelContext: string;
    mountApp(mount: Mount): Promise<void>;
  }
}

/** The policy a host writes for a resource: nothing from anywhere but what the resource declares. */
function policy(csp: Csp): string {
  const resources = (csp.resourceDomains ?? []).join(' ');
  const connect = (csp.connectDomains ?? []).join(' ') || "'none'";
  return [
    "default-src 'none'",
    `script-src 'unsafe-inline' ${resources}`.trim(),
    `style-src 'unsafe-inline' ${resources}`.trim(),
    `img-src data: ${resources}`.trim(),
    `font-src data: ${resources}`.trim(),
    `connect-src ${connect}`,
  ].join('; ');
}

window.openedLinks = [];
window.modelContext = '';

window.mountApp = async ({ html, csp, tool, hostContext }) => {
  const frame = document.createElement('iframe');
  frame.title = 'stocklock shop';
  frame.setAttribute('sandbox', 'allow-scripts');
  document.getElementById('conversation')?.append(frame);
  const view = frame.contentWindow as Window;
  const bridge = new AppBridge(
    null,
    { name: 'stocklock-test-host', version: '1.0.0' },
    { openLinks: {}, serverTools: {}, logging: {}, updateModelContext: { text: {} } },
    { hostContext },
  );
  bridge.oncalltool = async (params) => (await window.mcp('tools/call', params)) as never;
  bridge.onopenlink = async ({ url }) => {
    window.openedLinks.push(url);
    return {};
  };
  bridge.onupdatemodelcontext = async ({ content }) => {
    window.modelContext = (content ?? [])
      .map((block) => (block.type === 'text' ? block.text : ''))
      .join('\n');
    return {};
  };
  bridge.onsizechange = ({ height }) => {
    if (height !== undefined) frame.style.height = `${height}px`;
  };
  const initialized = new Promise<void>((resolve) => {
    bridge.oninitialized = () => resolve();
  });
  await bridge.connect(new PostMessageTransport(view, view));
  const meta = `<meta http-equiv="Content-Security-Policy" content="${policy(csp)}">`;
  frame.srcdoc = html.replace('<head>', `<head>${meta}`);
  await initialized;
  await bridge.sendToolInput({ arguments: tool.arguments });
  await bridge.sendToolResult(tool.result as never);
};
