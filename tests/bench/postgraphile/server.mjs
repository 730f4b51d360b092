// PostGraphile 5 peer for `cargo bench -p tests --bench read`: the amber preset over the public
// schema of DATABASE_URL, served by grafserv on node:http at 127.0.0.1:PORT/graphql.
// Production settings: no GraphiQL, no watch, no explain; POOL_SIZE connections (the bench gives
// the same number as our server's DATABASE_MAX_CONNECTIONS).
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

const port = Number(process.env.PORT);
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: Number(process.env.POOL_SIZE ?? 16) },
    }),
  ],
  grafserv: {
    host: "127.0.0.1",
    port,
    graphiql: false,
    watch: false,
    websockets: false,
  },
  grafast: { explain: false },
};

const serv = postgraphile(preset).createServ(grafserv);
const server = createServer();
server.on("error", (e) => {
  console.error(e);
  process.exit(1);
});
serv.addTo(server).catch((e) => {
  console.error(e);
  process.exit(1);
});
server.listen(port, "127.0.0.1");
