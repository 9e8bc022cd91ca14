// Builds the MCP App page (app/) into one self-contained HTML document: the script bundled and the styles
// inlined, so a host's sandbox needs nothing from anywhere else. Run by `npm run build`.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'dist', 'app', 'stocklock-app.html');

const bundle = await build({
  entryPoints: [join(ROOT, 'app', 'main.ts')],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  write: false,
});
// Nothing in the script may end the element that holds it.
const script = bundle.outputFiles[0].text.replaceAll('</script', '<\\/script');
const style = readFileSync(join(ROOT, 'app', 'styles.css'), 'utf8');
const page = readFileSync(join(ROOT, 'app', 'page.html'), 'utf8')
  .replace('/*STYLE*/', () => style)
  .replace('/*SCRIPT*/', () => script);
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(OUT, page);
console.log(`built ${OUT.slice(ROOT.length + 1)} (${Math.round(page.length / 1024)} KB)`);
