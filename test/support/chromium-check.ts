// Opens an HTML report in headless Chromium (Debian's /usr/bin/chromium through playwright-core)
// and reports, per chart container, whether an <svg> with marks rendered, plus console errors.
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface ChartCheck { id: string; svg: boolean; marks: number; width: number; height: number }

export async function checkReport(file: string): Promise<{ charts: ChartCheck[]; consoleErrors: string[]; requests: string[]; tableRows: number }> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    const consoleErrors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    page.on('request', (r) => { if (!r.url().startsWith('file:')) requests.push(r.url()); });
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    const charts = await page.$$eval('.chart', (els) => els.map((el) => {
      const svg = el.querySelector('svg');
      const box = svg?.getBoundingClientRect();
      const marks = svg ? svg.querySelectorAll('path, rect, line, circle, symbol').length : 0;
      return { id: el.getAttribute('data-chart') ?? el.id, svg: !!svg, marks, width: box?.width ?? 0, height: box?.height ?? 0 };
    }));
    const tableRows = await page.$$eval('table tbody tr', (rs) => rs.length);
    return { charts, consoleErrors, requests, tableRows };
  } finally {
    await browser.close();
  }
}
