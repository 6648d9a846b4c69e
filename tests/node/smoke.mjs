// Smoke test of the Milvus Node SDK (@zilliz/milvus2-sdk-node) against a running Quiver server.
//
//   QUIVER_ADDR=127.0.0.1:19530 node smoke.mjs      (tests/node/run.sh starts a server for you)
//   SMOKE_LOG_LEVEL=debug SMOKE_DEBUG=1 ...          (log every request; print stacks)
//
// Covers: connect, create collection (explicit schema: Int64 pk, FloatVector dim 8, VarChar),
// create index, load, insert 100 rows, search (self is nearest, distances ordered), query with a
// filter (exact ids and values), count, delete (by ids and by filter), drop. Exits 1 with a
// message naming the step on the first mismatch or error.

import { MilvusClient, DataType } from '@zilliz/milvus2-sdk-node';

const ADDR = process.env.QUIVER_ADDR || '127.0.0.1:19530';
const DIM = 8;
const N = 100;
const NAME = `node_smoke_${process.pid}_${Date.now().toString(36)}`;

let step = 'start';

function fail(msg) {
  throw new Error(`[${step}] ${msg}`);
}

function eq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) fail(`${what}: expected ${e}, got ${a}`);
}

// The SDK resolves most calls with a status instead of throwing: check it everywhere.
// A ResStatus is either the response itself ({error_code, code, reason}) or response.status.
function ok(res, what) {
  const st = res && res.status !== undefined && res.error_code === undefined ? res.status : res;
  if (!st) fail(`${what}: no response`);
  const code = st.code === undefined ? 0 : Number(st.code);
  if (st.error_code !== 'Success' || code !== 0) {
    fail(`${what}: server returned error_code=${st.error_code} code=${st.code} reason=${JSON.stringify(st.reason)}`);
  }
  return res;
}

// Deterministic vectors (xorshift32), so a failure reproduces.
function vectors(n, dim, seed) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296 - 0.5;
  };
  return Array.from({ length: n }, () => Array.from({ length: dim }, next));
}

const tagOf = (i) => `t${i % 5}`;

async function main() {
  step = 'connect';
  // maxRetries 0: the SDK retries a failed call (up to 3 times, with backoff), which turns a
  // protocol error into a 30 s deadline; a test should show the first error as it is.
  const config = { address: ADDR, timeout: 20000, maxRetries: 0 };
  if (process.env.SMOKE_LOG_LEVEL) config.logLevel = process.env.SMOKE_LOG_LEVEL; // e.g. debug: every request
  const client = new MilvusClient(config);
  await client.connectPromise;
  const ver = await client.getVersion();
  ok(ver, 'getVersion');
  const health = await client.checkHealth();
  ok(health, 'checkHealth');
  if (health.isHealthy !== true) fail(`checkHealth: isHealthy=${health.isHealthy}`);

  try {
    await run(client);
  } catch (e) {
    // Best effort: leave no collection behind on a shared server.
    try { await client.dropCollection({ collection_name: NAME }); } catch (_) { /* ignore */ }
    throw e;
  } finally {
    try { await client.closeConnection(); } catch (_) { /* ignore */ }
  }
  console.log(`node smoke OK: SDK ${MilvusClient.sdkInfo.version}, server ${ver.version}, collection ${NAME}`);
}

async function run(client) {
  step = 'createCollection';
  ok(
    await client.createCollection({
      collection_name: NAME,
      description: 'node sdk smoke test',
      consistency_level: 'Strong',
      fields: [
        { name: 'id', data_type: DataType.Int64, is_primary_key: true, autoID: false },
        { name: 'vec', data_type: DataType.FloatVector, dim: DIM },
        { name: 'tag', data_type: DataType.VarChar, max_length: 32 },
      ],
    }),
    'createCollection',
  );
  const has = ok(await client.hasCollection({ collection_name: NAME }), 'hasCollection');
  eq(has.value, true, 'hasCollection after create');

  step = 'describeCollection';
  const desc = ok(await client.describeCollection({ collection_name: NAME }), 'describeCollection');
  const fields = Object.fromEntries(desc.schema.fields.map((f) => [f.name, f]));
  eq(Object.keys(fields).sort(), ['id', 'tag', 'vec'], 'field names');
  eq(fields.id.data_type, 'Int64', 'id type');
  eq(fields.id.is_primary_key, true, 'id is primary key');
  eq(fields.vec.data_type, 'FloatVector', 'vec type');
  eq(String(fields.vec.dim ?? (fields.vec.type_params.find((p) => p.key === 'dim') || {}).value), String(DIM), 'vec dim');
  eq(fields.tag.data_type, 'VarChar', 'tag type');

  step = 'createIndex';
  ok(
    await client.createIndex({
      collection_name: NAME,
      field_name: 'vec',
      index_name: 'vec_idx',
      index_type: 'AUTOINDEX',
      metric_type: 'L2',
    }),
    'createIndex',
  );
  const idx = ok(await client.describeIndex({ collection_name: NAME, field_name: 'vec' }), 'describeIndex');
  if (!idx.index_descriptions || idx.index_descriptions.length !== 1) {
    fail(`describeIndex: expected one index, got ${JSON.stringify(idx.index_descriptions)}`);
  }
  eq(idx.index_descriptions[0].field_name, 'vec', 'index field');
  eq(idx.index_descriptions[0].index_name, 'vec_idx', 'index name');

  step = 'loadCollection';
  ok(await client.loadCollectionSync({ collection_name: NAME }), 'loadCollectionSync');
  const ls = ok(await client.getLoadState({ collection_name: NAME }), 'getLoadState');
  eq(ls.state, 'LoadStateLoaded', 'load state');

  step = 'insert';
  const vecs = vectors(N, DIM, 42);
  const rows = vecs.map((v, i) => ({ id: i, vec: v, tag: tagOf(i) }));
  const ins = ok(await client.insert({ collection_name: NAME, data: rows }), 'insert');
  eq(Number(ins.insert_cnt), N, 'insert_cnt');
  const insIds = (ins.IDs.int_id ? ins.IDs.int_id.data : ins.IDs.str_id.data).map(Number);
  eq(insIds, rows.map((r) => r.id), 'insert IDs');

  step = 'flush';
  ok(await client.flushSync({ collection_names: [NAME] }), 'flushSync');

  step = 'count';
  eq(ok(await client.count({ collection_name: NAME }), 'count').data, N, 'count(*) after insert');

  step = 'search';
  const k = 10;
  const sr = ok(
    await client.search({
      collection_name: NAME,
      data: vecs[7],
      anns_field: 'vec',
      limit: k,
      metric_type: 'L2',
      // The SDK takes hit ids from the returned columns only, and Milvus returns the primary
      // key as a column only when it is asked for (proxy: userRequestedPkFieldExplicitly).
      output_fields: ['id', 'tag'],
    }),
    'search',
  );
  const hits = sr.results;
  if (!Array.isArray(hits) || hits.length !== k) fail(`expected ${k} hits, got ${JSON.stringify(hits)}`);
  eq(String(hits[0].id), '7', 'nearest id of row 7\'s vector');
  if (!(Math.abs(hits[0].score) < 1e-5)) fail(`self distance should be ~0 (L2), got ${hits[0].score}`);
  for (let i = 1; i < hits.length; i++) {
    if (!(hits[i].score >= hits[i - 1].score)) {
      fail(`L2 distances not ascending at ${i}: ${hits.map((h) => h.score).join(', ')}`);
    }
  }
  // Brute force in JS: the same ids in the same order (vectors are random, so no ties).
  const l2 = (a, b) => a.reduce((s, x, j) => s + (x - b[j]) ** 2, 0);
  const expected = vecs
    .map((v, i) => [l2(v, vecs[7]), i])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .slice(0, k);
  eq(hits.map((h) => Number(h.id)), expected.map((e) => e[1]), 'search ids vs brute force');
  for (let i = 0; i < k; i++) {
    if (Math.abs(hits[i].score - expected[i][0]) > 1e-4) {
      fail(`distance of hit ${i}: expected ${expected[i][0]}, got ${hits[i].score}`);
    }
    eq(hits[i].tag, tagOf(Number(hits[i].id)), `tag of hit ${i}`);
  }

  // Two queries in one request: one result list per query.
  const sr2 = ok(
    await client.search({ collection_name: NAME, data: [vecs[3], vecs[50]], limit: 3, metric_type: 'L2', output_fields: ['id'] }),
    'search nq=2',
  );
  if (!Array.isArray(sr2.results) || sr2.results.length !== 2) fail(`nq=2: expected 2 result lists, got ${JSON.stringify(sr2.results)}`);
  eq([String(sr2.results[0][0].id), String(sr2.results[1][0].id)], ['3', '50'], 'nq=2 nearest ids');

  // Filtered search.
  const sr3 = ok(
    await client.search({ collection_name: NAME, data: vecs[7], limit: 5, filter: 'tag == "t3"', output_fields: ['id', 'tag'] }),
    'filtered search',
  );
  if (sr3.results.length !== 5) fail(`filtered search: expected 5 hits, got ${JSON.stringify(sr3.results)}`);
  for (const h of sr3.results) {
    eq(h.tag, 't3', `filtered search hit ${h.id} tag`);
    eq(Number(h.id) % 5, 3, `filtered search hit ${h.id}: id % 5`);
  }

  step = 'query';
  const q = ok(
    await client.query({
      collection_name: NAME,
      filter: 'id < 30 and tag == "t3"',
      output_fields: ['id', 'tag'],
    }),
    'query',
  );
  const qIds = q.data.map((r) => Number(r.id)).sort((a, b) => a - b);
  eq(qIds, [3, 8, 13, 18, 23, 28], 'query ids for `id < 30 and tag == "t3"`');
  for (const r of q.data) eq(r.tag, 't3', `query row ${r.id} tag`);

  const g = ok(await client.get({ collection_name: NAME, ids: [5, 77], output_fields: ['id', 'tag', 'vec'] }), 'get');
  const got = g.data.map((r) => [Number(r.id), r.tag]).sort((a, b) => a[0] - b[0]);
  eq(got, [[5, 't0'], [77, 't2']], 'get ids and tags');
  const v5 = g.data.find((r) => Number(r.id) === 5).vec;
  if (!Array.isArray(v5) || v5.length !== DIM || v5.some((x, j) => Math.abs(x - vecs[5][j]) > 1e-6)) {
    fail(`get: vector of id 5 differs: ${JSON.stringify(v5)} vs ${JSON.stringify(vecs[5])}`);
  }

  step = 'count with filter';
  eq(ok(await client.count({ collection_name: NAME, expr: 'tag == "t0"' }), 'count filter').data, 20, 'count(tag == "t0")');

  step = 'delete';
  const d1 = ok(await client.delete({ collection_name: NAME, ids: [1, 2, 3] }), 'delete ids');
  eq(Number(d1.delete_cnt), 3, 'delete_cnt (ids)');
  const d2 = ok(await client.delete({ collection_name: NAME, filter: 'id >= 90' }), 'delete filter');
  eq(Number(d2.delete_cnt), 10, 'delete_cnt (filter id >= 90)');
  eq(ok(await client.count({ collection_name: NAME }), 'count').data, N - 13, 'count(*) after delete');
  const gone = ok(await client.query({ collection_name: NAME, filter: 'id in [1, 2, 3, 4, 95]', output_fields: ['id'] }), 'query after delete');
  eq(gone.data.map((r) => Number(r.id)), [4], 'ids left of [1, 2, 3, 4, 95]');
  const sr4 = ok(await client.search({ collection_name: NAME, data: vecs[2], limit: 3 }), 'search after delete');
  // No output_fields: the SDK asks for '*', so the id comes back too.
  if (sr4.results.length !== 3 || sr4.results.some((h) => h.id === undefined)) {
    fail(`search after delete: expected 3 hits with ids, got ${JSON.stringify(sr4.results)}`);
  }
  if (sr4.results.some((h) => [1, 2, 3].includes(Number(h.id)) || Number(h.id) >= 90)) {
    fail(`search returned a deleted id: ${JSON.stringify(sr4.results.map((h) => h.id))}`);
  }

  step = 'drop';
  ok(await client.releaseCollection({ collection_name: NAME }), 'releaseCollection');
  ok(await client.dropCollection({ collection_name: NAME }), 'dropCollection');
  const has2 = ok(await client.hasCollection({ collection_name: NAME }), 'hasCollection after drop');
  eq(has2.value, false, 'hasCollection after drop');
  const names = ok(await client.showCollections(), 'showCollections').data.map((c) => c.name);
  if (names.includes(NAME)) fail(`showCollections still lists ${NAME}`);
}

main().catch((e) => {
  // Errors of our own checks carry the step; SDK / gRPC errors get it here.
  let msg = e instanceof Error ? e.message : `SDK threw ${JSON.stringify(e)}`;
  if (!msg.startsWith('[')) msg = `[${step}] ${msg}`;
  console.error(`node smoke FAILED: ${msg}`);
  if (e instanceof Error && process.env.SMOKE_DEBUG) console.error(e.stack);
  process.exit(1);
});
