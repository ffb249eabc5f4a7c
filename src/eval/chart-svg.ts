// Vega-Lite specs rendered to SVG in Node (no browser, no scripts in the pages that embed them).
// vega and vega-lite load on first use: commands that never draw a chart do not pay for them.
import type { TopLevelSpec } from 'vega-lite';

export async function renderSvg(spec: TopLevelSpec | Record<string, unknown>): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = vl.compile(spec as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
