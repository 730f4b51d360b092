// Builds a client schema, the way GraphiQL, Apollo tooling and graphql-codegen do, from the
// answer a running server gave to graphql-js' standard introspection query, and prints it next to
// the committed `schema.graphql`, both sorted and printed by graphql-js (tests/tests/tooling.rs).
//
// usage: node client-schema.js ANSWER.json SCHEMA.graphql QUERY.graphql
// prints: {"queryIsStandard": bool, "client": "<SDL>", "committed": "<SDL>"}
'use strict';
const { readFileSync } = require('node:fs');
const {
  GraphQLSchema,
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  lexicographicSortSchema,
  printSchema,
} = require('graphql');

const [answerPath, schemaPath, queryPath] = process.argv.slice(2);

// The options the fixture was generated with; the fixture must still be this package's text.
const standard = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
});

// async-graphql answers `__Schema.description` with a fixed sentence of its own that no SDL
// carries, so the schema's description is left out of the comparison.
const normalized = (schema) =>
  printSchema(
    lexicographicSortSchema(new GraphQLSchema({ ...schema.toConfig(), description: undefined })),
  );

const answer = JSON.parse(readFileSync(answerPath, 'utf8'));
process.stdout.write(
  JSON.stringify({
    queryIsStandard: readFileSync(queryPath, 'utf8') === standard,
    client: normalized(buildClientSchema(answer.data)),
    committed: normalized(buildSchema(readFileSync(schemaPath, 'utf8'))),
  }),
);
