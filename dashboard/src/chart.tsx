import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Line {
  label: string;
  values: (number | null)[];
}

const COLORS = ['#2563eb', '#16a34a', '#d97706', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#4b5563', '#65a30d', '#9333ea'];

let firstDrawn = false;

/**
 * A time-series chart (uPlot: ~50 KB, canvas, built for many points). The canvas is an image to
 * a screen reader, so the figure carries a label and the same numbers are in a table nearby.
 */
export function TimeChart({ title, times, lines, height = 220 }: { title: string; times: number[]; lines: Line[]; height?: number }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: el.clientWidth || 600,
      height,
      series: [{}, ...lines.map((l, i) => ({ label: l.label, stroke: COLORS[i % COLORS.length], width: 2, points: { show: times.length < 60 } }))],
      axes: [{}, { size: 60 }],
      scales: { x: { time: true } },
      legend: { live: false },
    };
    const plot = new uPlot(opts, [times, ...lines.map((l) => l.values)] as uPlot.AlignedData, el);
    if (!firstDrawn) {
      firstDrawn = true;
      performance.mark('relay:first-chart');
    }
    const resize = new ResizeObserver(() => plot.setSize({ width: el.clientWidth, height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [times, lines, height]);
  return (
    <figure class="chart" role="img" aria-label={title}>
      <figcaption>{title}</figcaption>
      <div ref={box} />
    </figure>
  );
}
