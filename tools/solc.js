#!/usr/bin/env node
// A `solc` that py-solc-x (and so brownie) can drive, on top of solcjs, the official compiler built to
// WebAssembly (same bytecode as native solc for the same version and settings). Native solc cannot be
// downloaded on these machines. It answers `--version` in native form and serves `--standard-json`;
// other flags (brownie passes `--allow-paths DIRS`) are accepted and ignored: sources come inline.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require(path.join(__dirname, '..', 'node_modules', 'solc'));

const args = process.argv.slice(2);
if (args.includes('--version')) {
  const version = solc.version().replace('.Emscripten.clang', '.Linux.g++');
  fs.writeSync(1, `solc, the solidity compiler commandline interface\nVersion: ${version}\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  fs.writeSync(2, 'this solc wrapper serves only --version and --standard-json\n');
  process.exit(1);
}
const input = fs.readFileSync(0, 'utf8');
// Written with writeSync so the whole output reaches the pipe before node exits (the solcjs CLI
// cuts piped output at 64 KiB).
fs.writeSync(1, solc.compile(input));
