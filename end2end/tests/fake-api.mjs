// A minimal Kubernetes API server for browser tests (the Rust tests have the full one): lists the
// objects of a lab's cluster.json by kind, holds watches open, and answers 403 for the
// collections it is told to forbid — enough for `podtap serve` to name a replay under partial RBAC.
import { createServer } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';

const PATHS = {
  '/api/v1/pods': ['Pod', 'v1'], '/api/v1/services': ['Service', 'v1'], '/api/v1/nodes': ['Node', 'v1'],
  '/api/v1/namespaces': ['Namespace', 'v1'], '/apis/discovery.k8s.io/v1/endpointslices': ['EndpointSlice', 'discovery.k8s.io/v1'],
  '/apis/apps/v1/replicasets': ['ReplicaSet', 'apps/v1'], '/apis/batch/v1/jobs': ['Job', 'batch/v1'],
};

/**
 * Serves `clusterJson`'s items; `forbidden` collections (e.g. 'jobs') get 403. Writes a kubeconfig.
 * On `port` when given (an API server that comes up where a kubeconfig already points).
 */
export function startFakeApi(clusterJson, forbidden, kubeconfigPath, port = 0) {
  const items = JSON.parse(readFileSync(clusterJson)).items;
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const kind = PATHS[url.pathname];
    if (!kind) return res.writeHead(404, { 'content-type': 'application/json' }).end('{"kind":"Status","code":404}');
    const plural = url.pathname.split('/').pop();
    if (forbidden.includes(plural)) {
      return res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({
        kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Forbidden', code: 403,
        message: `${plural} is forbidden: User "viewer" cannot list resource "${plural}" at the cluster scope`,
      }));
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    if (url.searchParams.get('watch') === 'true') return; // held open, nothing changes
    res.end(JSON.stringify({ apiVersion: kind[1], kind: kind[0] + 'List', metadata: { resourceVersion: '1' },
      items: items.filter((o) => o.kind === kind[0]).map((o) => ({ ...o, apiVersion: kind[1] })) }));
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => {
    const addr = `http://127.0.0.1:${server.address().port}`;
    writeFileSync(kubeconfigPath, `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: ${addr}\n`
      + 'users:\n- name: viewer\n  user: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: viewer\n'
      + 'current-context: fake\n');
    resolve({ stop: () => { server.closeAllConnections(); server.close(); } });
  }));
}

/** A loopback port nothing listens on (yet). */
export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}
