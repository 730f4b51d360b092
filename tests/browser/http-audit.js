// Runs every audit of the graphql-http reference suite (GraphQL over HTTP) against a running
// server's endpoint (tests/tests/tooling.rs).
//
// usage: node http-audit.js URL
// prints: [{"id", "name", "status": "ok" | "warn" | "error", "reason"}, …]
'use strict';
const { serverAudits } = require('graphql-http');

(async () => {
  const results = [];
  for (const audit of serverAudits({ url: process.argv[2], fetchFn: fetch })) {
    const { status, reason } = await audit.fn();
    results.push({ id: audit.id, name: audit.name, status, reason });
  }
  process.stdout.write(JSON.stringify(results));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
