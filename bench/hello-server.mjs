// Minimal mTLS "hello" HTTPS server: the ceiling for a Node HTTPS service on
// this machine. Started by baselines.mjs as a child process (with an IPC channel).
//
// Input (env): WRIT_BENCH_HELLO = JSON { key, cert, ca, workers }.
// Output (IPC to the parent): { port } once every worker listens on 127.0.0.1.
// With workers > 1, node:cluster workers share one port (listen(0) in cluster
// workers yields the same port for all of them).
import cluster from 'node:cluster';
import { createServer } from 'node:https';

const config = JSON.parse(process.env.WRIT_BENCH_HELLO ?? '{}');
const workers = Math.max(1, config.workers ?? 1);
const BODY = '{"ok":true}';

/** Listen on 127.0.0.1:0 and resolve with the port. */
function listen() {
  const server = createServer(
    { key: config.key, cert: config.cert, ca: config.ca, requestCert: true, rejectUnauthorized: true, keepAliveTimeout: 60_000 },
    (req, res) => {
      req.resume(); // consume the request body
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
        res.end(BODY);
      });
    },
  );
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

/** Cluster primary: fork the workers, report the shared port once all listen. */
function startPrimary() {
  let listening = 0;
  cluster.on('listening', (_worker, address) => {
    if (++listening === workers) process.send({ port: address.port });
  });
  cluster.on('exit', (_worker, code, signal) => {
    if (!stopping) {
      console.error(`hello-server: worker exited (code ${code}, signal ${signal})`);
      process.exit(1);
    }
  });
  let stopping = false;
  process.on('SIGTERM', () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
    process.exit(0);
  });
  for (let i = 0; i < workers; i++) cluster.fork();
}

if (workers > 1 && cluster.isPrimary) startPrimary();
else if (cluster.isWorker) await listen();
else process.send({ port: await listen() });
