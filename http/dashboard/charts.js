// The charts of the last minutes, drawn with uPlot (served by the dashboard from node_modules as the
// global `uPlot`) from GET /api/series: columns of samples, one a second, oldest first.

const BREAKER_STATES = ['closed', 'half_open', 'open'];
const HEIGHT = 170;

const rate = (value) => (value === null ? '—' : value.toFixed(value < 10 ? 2 : 0));
const ms = (value) => (value === null ? '—' : `${value.toFixed(value < 10 ? 1 : 0)} ms`);
const percent = (value) => (value === null ? '—' : `${(value * 100).toFixed(1)} %`);

/** A y range from 0 to the data's highest value, or to `least` when the data stays below it. */
const fromZero = (least) => (u, min, max) => [0, Math.max(least, max)];

/**
 * What each chart plots: its series (a column of the answer, a colour, how its value is shown), the
 * y range and axis, and for the bank's errors a second scale on the right for the calls made. The
 * breaker's states are drawn as steps at 0, 1 and 2, labelled by name.
 */
const CHARTS = [
  {
    id: 'chart-transactions',
    series: [
      { label: 'created / s', column: 'created_per_s', stroke: '#2f6fdf', show: rate },
      { label: 'settled / s', column: 'settled_per_s', stroke: '#1b7f3b', show: rate },
      { label: 'failed / s', column: 'failed_per_s', stroke: '#b3261e', show: rate },
    ],
    range: fromZero(1),
  },
  {
    id: 'chart-latency',
    series: [
      { label: 'p50', column: 'bank_p50_ms', stroke: '#2f6fdf', show: ms },
      { label: 'p99', column: 'bank_p99_ms', stroke: '#a66300', show: ms },
    ],
    range: fromZero(10),
  },
  {
    id: 'chart-bank-errors',
    series: [
      { label: 'transient errors', column: 'bank_error_rate', stroke: '#b3261e', show: percent },
      { label: 'calls / s', column: 'bank_calls_per_s', stroke: '#5a6572', show: rate, scale: 'calls' },
    ],
    range: [0, 1],
    axis: { values: (u, splits) => splits.map((v) => `${Math.round(v * 100)} %`) },
    right: { scale: 'calls', range: fromZero(1) },
  },
  {
    id: 'chart-breaker',
    series: [
      {
        label: 'circuit',
        column: 'breaker',
        stroke: '#a66300',
        fill: 'rgba(166, 99, 0, 0.12)',
        stepped: true,
        toNumber: (state) => BREAKER_STATES.indexOf(state),
        show: (value) => (value === null ? '—' : BREAKER_STATES[value].replace('_', '-')),
      },
    ],
    range: [0, 2.2],
    axis: {
      size: 70,
      splits: () => [0, 1, 2],
      values: (u, splits) => splits.map((v) => BREAKER_STATES[v]?.replace('_', '-') ?? ''),
    },
  },
  {
    id: 'chart-in-flight',
    series: [
      { label: 'payments in flight', column: 'payments_in_flight', stroke: '#6a3fb5', show: (v) => String(v ?? '—') },
    ],
    range: fromZero(1),
  },
];

/** The value the legend shows: the hovered sample's, or the latest when the cursor is off the chart. */
const shown = (u, sidx, idx, value) => (idx === null || idx === undefined ? (u.data[sidx].at(-1) ?? null) : value);
const clock = (seconds) => (seconds === null ? '—' : new Date(seconds * 1000).toLocaleTimeString());

function options(chart, width) {
  const axes = [{}, chart.axis ?? {}];
  const scales = { x: { time: true }, y: { range: chart.range } };
  if (chart.right) {
    axes.push({ scale: chart.right.scale, side: 1, grid: { show: false } });
    scales[chart.right.scale] = { range: chart.right.range };
  }
  return {
    width,
    height: HEIGHT,
    scales,
    axes,
    cursor: { drag: { x: false, y: false } },
    series: [
      { label: 'time', value: (u, value, sidx, idx) => clock(shown(u, sidx, idx, value)) },
      ...chart.series.map((s) => ({
        label: s.label,
        stroke: s.stroke,
        fill: s.fill,
        width: 2,
        scale: s.scale ?? 'y',
        spanGaps: false,
        value: (u, value, sidx, idx) => s.show(shown(u, sidx, idx, value)),
        paths: s.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
      })),
    ],
  };
}

/** The columns a chart plots, in uPlot's layout: [times, ...one array per series]. */
function columns(chart, series) {
  return [series.t, ...chart.series.map((s) => (s.toNumber ? series[s.column].map(s.toNumber) : series[s.column]))];
}

/** Creates the charts in their figures (empty until the first answer); `update` redraws them all. */
export function createCharts() {
  const plots = CHARTS.map((chart) => {
    const figure = document.getElementById(chart.id);
    // The plot takes its holder's width: the figure's, inside its padding.
    const holder = document.createElement('div');
    figure.append(holder);
    const empty = [[], ...chart.series.map(() => [])];
    return { chart, figure, holder, plot: new uPlot(options(chart, holder.clientWidth), empty, holder) };
  });

  // One resize a frame at most, however many events the window sends.
  let resizing = false;
  window.addEventListener('resize', () => {
    if (resizing) return;
    resizing = true;
    requestAnimationFrame(() => {
      resizing = false;
      for (const { holder, plot } of plots) plot.setSize({ width: holder.clientWidth, height: HEIGHT });
    });
  });

  return {
    /** Draws a GET /api/series answer; each figure says how many samples it shows. */
    update(series) {
      for (const { chart, figure, plot } of plots) {
        plot.setData(columns(chart, series));
        figure.dataset.samples = String(series.t.length);
      }
    },
  };
}
