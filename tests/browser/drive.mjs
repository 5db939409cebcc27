// Drives Debian's chromium (headless, fresh profile, no network but 127.0.0.1) through the
// page's scenarios and writes what it saw as JSON; tests/tests/browser.rs decides pass/fail.
// Usage: node drive.mjs CONFIG.json   (config: {chromium, out, scenarios: [...]})
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The flag set that gives WebGPU (SwiftShader) and WebGL2 in headless chromium as root,
// with every background connection off.
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
  '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader',
];

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const profile = mkdtempSync(join(tmpdir(), 'ot3d-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: config.chromium, headless: true, args: CHROMIUM_ARGS,
  viewport: { width: 1100, height: 900 }, acceptDownloads: true,
});

async function waitReady(page, previousHash, timeout) {
  await page.waitForFunction(
    (prev) => window.ot3d && (window.ot3d.status === 'error'
      || (window.ot3d.status === 'ready' && window.ot3d.hash !== prev)),
    previousHash, { timeout, polling: 100 },
  );
}

async function runScenario(s) {
  const page = await context.newPage();
  if (s.viewport) await page.setViewportSize(s.viewport);
  const seen = { consoleErrors: [], requests: [], downloads: [] };
  page.on('console', (m) => { if (m.type() === 'error') seen.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => seen.consoleErrors.push(`page error: ${e.message}`));
  page.on('request', (r) => seen.requests.push(r.url()));
  page.on('download', (d) => seen.downloads.push(d.suggestedFilename()));
  const result = { name: s.name };
  try {
    await page.goto(s.url);
    await waitReady(page, null, s.timeout_ms ?? 120000);
    for (const action of s.actions ?? []) {
      const before = await page.evaluate(() => window.ot3d.hash);
      if (action.type === 'click') {
        await page.click(action.selector);
      } else if (action.type === 'draw') {
        const box = await page.locator('#pad').boundingBox();
        for (const stroke of action.strokes) {
          const at = ([x, y]) => [box.x + x * box.width, box.y + y * box.height];
          await page.mouse.move(...at(stroke[0]));
          await page.mouse.down();
          for (const p of stroke.slice(1)) await page.mouse.move(...at(p), { steps: 4 });
          await page.mouse.up();
        }
      } else if (action.type === 'key') {
        await page.focus(action.selector);
        await page.keyboard.press(action.key);
      }
      if (action.wait !== false) await waitReady(page, before, 30000);
      else await page.waitForTimeout(500);
    }
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    Object.assign(result, await page.evaluate(() => ({
      status: window.ot3d.status,
      error: window.ot3d.error,
      problems: window.ot3d.problems,
      backend: window.ot3d.backend ?? null,
      medianMs: window.ot3d.medianMs ?? null,
      hash: location.hash,
      cubes: window.ot3d.cubes ?? null,
      input: window.ot3d.input ? Array.from(window.ot3d.input) : null,
      output: window.ot3d.output ? Array.from(window.ot3d.output) : null,
      partner: window.ot3d.partner ?? null,
      partnerText: document.getElementById('partner-caption').textContent,
      partnerShown: !document.getElementById('partner').hidden && document.getElementById('partner').complete
        && document.getElementById('partner').naturalWidth > 0,
      statusText: document.getElementById('status').textContent,
      errorText: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
      noticeText: document.getElementById('notice').hidden ? '' : document.getElementById('notice').textContent,
      timingText: document.getElementById('timing').textContent,
      controls: {
        threshold: Number(document.getElementById('threshold').value),
        t: Number(document.getElementById('t').value),
        cpu: document.getElementById('force-cpu').checked,
        color: document.querySelector('[data-color][aria-pressed="true"]')?.dataset.color ?? null,
      },
      hasWebGpu: !!navigator.gpu,
    })));
    if (s.screenshot) {
      await page.screenshot({ path: s.screenshot });
      // The 3D view alone, to check in Rust that both digits were drawn.
      await page.locator('#view').screenshot({ path: s.screenshot.replace(/\.png$/, '-view.png') });
    }
  } catch (e) {
    result.failure = String(e && e.stack || e);
  }
  Object.assign(result, seen);
  await page.close();
  return result;
}

const results = [];
for (const s of config.scenarios) results.push(await runScenario(s));
await context.close();
rmSync(profile, { recursive: true, force: true });
writeFileSync(config.out, JSON.stringify(results));
