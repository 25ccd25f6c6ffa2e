// Benchmark output: summaries per mode and profile (summary.ts), targets (targets.ts), text tables in Markdown
// (tables.ts), and an SVG chart (chart.ts). Everything here is pure: main.ts does the writing.
export * from './summary.js';
export * from './targets.js';
export * from './tables.js';
export * from './chart.js';
