import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** Tick steps of a count axis: whole numbers only. */
const COUNT_STEPS = [1, 2, 5]
  .flatMap((m) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6].map((p) => m * p))
  .sort((a, b) => a - b);

export interface ChartSeries {
  label: string;
  values: number[];
  color: string;
  kind: 'line' | 'bars';
}

/**
 * A uPlot chart over categories (months). It is drawn on a canvas, so it is hidden from
 * assistive technology: every chart sits next to a table of the same figures.
 */
export function Chart({
  labels,
  series,
  height = 220,
}: {
  labels: string[];
  series: ChartSeries[];
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const bars = uPlot.paths.bars!({ size: [0.7, 48] });
    const plot = new uPlot(
      {
        width: Math.max(el.clientWidth, 240),
        height,
        // Categories 0..n-1, with half a slot either side so that edge bars show whole.
        // Counts: the y axis starts at 0 and ticks at whole numbers.
        scales: {
          x: { time: false, range: [-0.5, labels.length - 0.5] },
          y: { range: (_u, _min, max) => uPlot.rangeNum(0, Math.max(max, 1), 0.1, true) },
        },
        legend: { show: true, live: false },
        cursor: { show: false },
        axes: [
          {
            values: (_u, splits) => splits.map((i) => labels[i] ?? ''),
            incrs: [1, 2, 3, 6, 12],
            space: 56,
            stroke: '#3d4654',
            grid: { show: false },
          },
          { stroke: '#3d4654', grid: { stroke: '#e3e7ee' }, size: 56, incrs: COUNT_STEPS },
        ],
        series: [
          {},
          ...series.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: s.kind === 'line' ? 2 : 1,
            fill: s.kind === 'bars' ? s.color : undefined,
            paths: s.kind === 'bars' ? bars : undefined,
            points: { show: s.kind === 'line' && labels.length <= 24 },
          })),
        ],
      },
      // A zero bar is no bar (null), not a hairline.
      [
        labels.map((_, i) => i),
        ...series.map((s) => s.values.map((v) => (s.kind === 'bars' && v === 0 ? null : v))),
      ],
      el,
    );
    const resize = new ResizeObserver(() => {
      plot.setSize({ width: Math.max(el.clientWidth, 240), height });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [labels.join(), series.map((s) => s.values.join()).join('|'), height]);
  return <div class="chart" ref={box} aria-hidden="true" />;
}
