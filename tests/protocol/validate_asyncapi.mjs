// Validates an AsyncAPI document with @asyncapi/parser (the AsyncAPI Initiative's own
// parser and its Spectral rules). Prints one JSON line: {"errors", "warnings", "messages"}
// after one line per diagnostic; exits 1 on any error.
//   node tests/protocol/validate_asyncapi.mjs docs/asyncapi.yaml
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(process.argv[2], 'utf8'));
for (const d of diagnostics) {
  console.log(`severity=${d.severity} ${d.code}: ${d.message} at ${JSON.stringify(d.path)}`);
}
const errors = diagnostics.filter((d) => d.severity === 0).length;
console.log(JSON.stringify({
  errors,
  warnings: diagnostics.length - errors,
  messages: document ? document.allMessages().length : 0,
}));
process.exit(errors || !document ? 1 : 0);
