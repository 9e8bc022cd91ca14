// Builds the MCP App page (app/) into one self-contained HTML document: the script bundled and the styles
// inlined, so a host's sandbox needs nothing from anywhere else. Run by `npm run build`.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'dist', 'app', 'stocklock-app.html');

/**
 * zod (which ext-apps' App reaches through the SDK client) re-exports every locale's messages; nothing in the page
 * uses any but the English default, so the bundle keeps that one: 260 KB less for every host to load.
 */
const englishOnlyZod = {
  name: 'english-only-zod',
  setup(builder) {
    builder.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(`${join('node_modules', 'zod')}`)
        ? { path: join(dirname(args.importer), '..', 'locales', 'index.js'), namespace: 'zod-locales' }
        : undefined,
    );
    builder.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(join(dirname(args.path), 'en.js'))};`,
      resolveDir: dirname(args.path),
    }));
  },
};

const bundle = await build({
  entryPoints: [join(ROOT, 'app', 'main.ts')],
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  write: false,
  plugins: [englishOnlyZod],
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
