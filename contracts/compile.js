#!/usr/bin/env node
// Compile contracts/src/*.sol with the pinned npm `solc` (solcjs) and OpenZeppelin from
// node_modules, offline. Writes one artifact per contract into contracts/artifacts/ (or the
// folder given with --out): {contractName, sourceName, abi, bytecode, deployedBytecode,
// compiler}. The same sources and settings always give the same files, so a test recompiles
// into a temporary folder and compares them with the committed ones.
//
//   node contracts/compile.js [--out DIR]
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const EXPECTED_SOLC = "0.8.37";
const SETTINGS = {
  evmVersion: "cancun", // what eth-tester's py-evm and anvil both run
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

const repo = path.resolve(__dirname, "..");
const srcDir = path.join(__dirname, "src");
const outFlag = process.argv.indexOf("--out");
const outDir = outFlag > 0 ? path.resolve(process.argv[outFlag + 1]) : path.join(__dirname, "artifacts");

const version = solc.version();
if (!version.startsWith(EXPECTED_SOLC + "+")) {
  console.error(`solc ${version} found; ${EXPECTED_SOLC} is pinned (npm ci)`);
  process.exit(2);
}

const sources = {};
for (const name of fs.readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[`contracts/src/${name}`] = { content: fs.readFileSync(path.join(srcDir, name), "utf8") };
}

function findImports(importPath) {
  const candidates = [path.join(repo, "node_modules", importPath), path.join(repo, importPath)];
  for (const file of candidates) {
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `import not found: ${importPath}` };
}

const input = { language: "Solidity", sources, settings: SETTINGS };
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

fs.mkdirSync(outDir, { recursive: true });
for (const sourceName of Object.keys(sources)) {
  for (const [contractName, c] of Object.entries(output.contracts[sourceName])) {
    const artifact = {
      contractName,
      sourceName,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      compiler: { solc: version, settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer } },
    };
    fs.writeFileSync(path.join(outDir, `${contractName}.json`), JSON.stringify(artifact, null, 2) + "\n");
    console.log(`${contractName}: ${c.evm.deployedBytecode.object.length / 2} bytes deployed`);
  }
}
