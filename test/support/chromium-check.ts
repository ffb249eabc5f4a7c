// Headless Chromium for the page tests: Debian's /usr/bin/chromium through playwright-core (no browser
// download). A missing Chromium fails the test with what to install, not a bare path error.
// checkReport opens an HTML report and says, per chart, whether an <svg> with marks rendered, its legend
// entries, the headline, and where the key table's columns lie at a given viewport width.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { pathToFileURL } from 'node:url';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags that keep Chromium off the network and away from the machine's profile (Playwright gives each launch a fresh profile dir). */
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

/** Throws, with what to do, where Chromium is missing. */
export function requireChromium(file = CHROMIUM): string {
  if (!existsSync(file)) {
    throw new Error(`precondition: headless Chromium not found at ${file}. The page tests need Debian's package \`chromium\` ` +
      '(sudo apt-get install chromium; .ci/run installs it), or CHROMIUM_PATH=<a Chromium binary>.');
  }
  return file;
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: requireChromium(), args: FLAGS });
}

export interface ChartCheck {
  id: string; svg: boolean; marks: number; width: number; height: number;
  /** Legend entries: label text and the symbol's colour (fill, else stroke). */
  legend: Array<{ label: string; colour: string }>;
}

export interface ReportCheck {
  charts: ChartCheck[];
  consoleErrors: string[];
  /** Requests for anything but the file itself (a self-contained page makes none). */
  requests: string[];
  tableRows: number;
  headline: string;
  /** The key table's metric columns: header text and the right edge of the header and of every cell, in px. */
  keyColumns: Array<{ metric: string; head: string; left: number; right: number; cellsRight: number }>;
  viewportWidth: number;
}

export async function checkReport(file: string, opts: { width?: number; screenshot?: string } = {}): Promise<ReportCheck> {
  const browser = await launchChromium();
  try {
    const viewportWidth = opts.width ?? 1400;
    const page = await browser.newPage({ viewport: { width: viewportWidth, height: 900 } });
    const consoleErrors: string[] = [];
    const requests: string[] = [];
    const self = pathToFileURL(file).href;
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    page.on('request', (r) => { if (r.url() !== self) requests.push(r.url()); });
    await page.goto(self, { waitUntil: 'load' });
    const charts = await page.$$eval('.chart', (els) => els.map((el) => {
      const svg = el.querySelector('svg');
      const box = svg?.getBoundingClientRect();
      const marks = svg ? svg.querySelectorAll('path, rect, line, circle, symbol').length : 0;
      const legend = [...el.querySelectorAll('.role-legend-entry .role-legend-label text')].map((t, i) => {
        const sym = el.querySelectorAll('.role-legend-entry .role-legend-symbol path')[i];
        const fill = sym?.getAttribute('fill');
        return { label: t.textContent ?? '', colour: fill && fill !== 'transparent' && fill !== 'none' ? fill : sym?.getAttribute('stroke') ?? '' };
      });
      return { id: el.getAttribute('data-chart') ?? el.id, svg: !!svg && (svg.innerHTML.length > 0), marks, width: box?.width ?? 0, height: box?.height ?? 0, legend };
    }));
    const tableRows = await page.$$eval('table tbody tr', (rs) => rs.length);
    const headline = await page.$eval('#headline', (e) => (e as HTMLElement).innerText).catch(() => '');
    const keyColumns = await page.$$eval('#key-table th[data-metric]', (ths) => ths.map((th) => {
      const cell = th as HTMLTableCellElement;
      const b = cell.getBoundingClientRect();
      const table = cell.closest('table')!;
      const col = [...cell.parentElement!.children].indexOf(cell);
      const cellsRight = Math.max(b.right, ...[...table.querySelectorAll('tbody tr')].map((tr) => tr.children[col]?.getBoundingClientRect().right ?? 0));
      return { metric: cell.dataset.metric ?? '', head: cell.innerText, left: b.left, right: b.right, cellsRight };
    }));
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
    return { charts, consoleErrors, requests, tableRows, headline, keyColumns, viewportWidth };
  } finally {
    await browser.close();
  }
}
