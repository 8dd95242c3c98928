#!/usr/bin/env node
// A local Cosmos DB (NoSQL API) for Paracell's tests: @vercel/cosmosdb-server 1.0.1 over plain HTTP,
// with the five deviations from the real service that the Rust SDK (azure_data_cosmos 1.0.x) trips
// over bridged here, and one speed bridge (6). README.md lists them. The layer reaches into the server's internal modules, so
// package.json pins the version exactly; the first check below refuses any other version.
//
// It also counts the document requests it serves, by container and operation, so tests can assert
// how many round trips an operation of the store takes: `GET /_paracell/requests?container=C`
// answers `{"read": 2, "batch": 1, ...}` for container C since the server started (operations:
// read, create, upsert, replace, delete, query, batch; account and container metadata not counted).
//
// Usage: node server.js --host 127.0.0.1 --port 8081
"use strict";

const path = require("path");
const PINNED = "1.0.1";
const serverPackage = require("@vercel/cosmosdb-server/package.json");
if (serverPackage.version !== PINNED) {
  console.error(`cosmosdb compat layer: written for @vercel/cosmosdb-server ${PINNED}, found ${serverPackage.version}`);
  process.exit(2);
}
const lib = (name) => require(path.join("@vercel/cosmosdb-server/lib", name));

// Handlers are patched before `lib/index` loads the router, which captures them at load time.
const documentOperations = lib("handler/_document-operations");
const readJson = lib("json").default;
const partitionHeader = lib("utils/get-partition-from-header");

// Bridge 1: partition key range ids are strings on the service (the SDK's model requires it);
// the server returns numbers, and the SDK then fails every data request with 503/20305.
const pkRanges = lib("handler/read-partition-key-ranges");
const readPkRanges = pkRanges.default;
pkRanges.default = async (...args) => {
  const body = await readPkRanges(...args);
  for (const range of (body && body.PartitionKeyRanges) || []) {
    range.id = String(range.id);
  }
  return body;
};

// Bridge 2: served over plain HTTP, the account document must advertise http:// locations, or the
// SDK switches to TLS for every data request. And it names the address the request came in on (its
// Host), as the service names the endpoints a client can reach: the SDK sends every data request to
// the advertised location, so a client that reaches the server through a proxy (the outage drill's
// fault proxies) stays behind it instead of going round it to the server's own port.
const meta = lib("handler/read-meta");
const readMeta = meta.default;
meta.default = (account, req, ...rest) => {
  const document = readMeta(account, req, ...rest);
  const host = req && req.headers && req.headers.host;
  const plain = (locations) =>
    (locations || []).map((l) => ({
      ...l,
      databaseAccountEndpoint: host ? `http://${host}/` : l.databaseAccountEndpoint.replace(/^https:/, "http:"),
    }));
  return { ...document, writableLocations: plain(document.writableLocations), readableLocations: plain(document.readableLocations) };
};

// Bridge 3: reading a missing document in a partitioned container is 404 on the service; the
// server throws a TypeError (500) instead.
const readDocument = lib("handler/read-document");
const readDocumentOriginal = readDocument.default;
readDocument.default = (account, req, res, params) => {
  const collection = account.database(params.dbId).collection(params.collId);
  const header = partitionHeader.default(req);
  if (collection.read() && header !== undefined) {
    let exists = true;
    try {
      const partition = partitionHeader.parsePartitionKey(header, params.docId);
      exists = Boolean(collection.document(params.docId, partition).read());
    } catch (_) {
      exists = true; // let the server report its own error
    }
    if (!exists) {
      res.statusCode = 404;
      return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
    }
  }
  return readDocumentOriginal(account, req, res, params);
};

// Bridge 4: an atomic transactional batch applies all of its operations or none. The server keeps
// the operations before a failing one; the service answers 207 with the failing operation's status,
// 424 for every other one, and applies nothing. Everything after the body is read runs without
// yielding, so no other request can interleave with the snapshot and its restore.
const batch = lib("handler/batch-documents");
const OPERATIONS = {
  Create: documentOperations.createOperation,
  Upsert: documentOperations.upsertOperation,
  Read: documentOperations.readOperation,
  Delete: documentOperations.deleteOperation,
  Replace: documentOperations.replaceOperation,
};
batch.default = async (account, req, res, { dbId, collId }) => {
  const body = await readJson(req);
  const collection = account.database(dbId).collection(collId);
  if (!collection.read()) {
    res.statusCode = 404;
    return {};
  }
  if (!Array.isArray(body)) {
    res.statusCode = 400;
    return { message: "Invalid request body" };
  }
  const batchPartition = partitionHeader.default(req);
  const items = collection.documents;
  const snapshot = { data: new Map(items._data), index: new Map(items._index), rids: items._ridCount };
  const results = [];
  let failedAt = -1;
  for (let i = 0; i < body.length && failedAt < 0; i += 1) {
    const input = { ...body[i] };
    if (input.partitionKey === undefined && batchPartition !== undefined) {
      input.partitionKey = batchPartition;
    }
    const operation = OPERATIONS[input.operationType];
    if (!operation) {
      res.statusCode = 400;
      return { message: `Operation type '${input.operationType}' is not supported in Batch.` };
    }
    let result;
    try {
      result = operation(collection, input);
    } catch (err) {
      result = { statusCode: 400, body: { code: "BadRequest", message: err.message } };
    }
    if (result.statusCode >= 400) {
      failedAt = i;
    }
    results.push(result);
  }
  if (failedAt < 0) {
    return results.map((r) => ({
      statusCode: r.statusCode,
      requestCharge: 1,
      eTag: r.body ? r.body._etag : undefined,
      resourceBody: r.body,
    }));
  }
  items._data = snapshot.data;
  items._index = snapshot.index;
  items._ridCount = snapshot.rids;
  res.statusCode = 207;
  return body.map((_, i) =>
    i === failedAt ? { statusCode: results[i].statusCode, requestCharge: 0 } : { statusCode: 424, requestCharge: 0 },
  );
};

// Bridge 5: the SDK runs a cross-partition query as one query per partition key range
// (`x-ms-documentdb-partitionkeyrangeid`), which the service accepts; the server refuses any query
// on a partitioned container that neither names the partition key nor carries the older
// `x-ms-documentdb-query-enablecrosspartition` header.
const queryDocuments = lib("handler/query-documents");
const queryDocumentsOriginal = queryDocuments.default;
queryDocuments.default = (account, req, res, params) => {
  if (req.headers["x-ms-documentdb-partitionkeyrangeid"] !== undefined && req.headers["x-ms-documentdb-partitionkey"] === undefined) {
    req.headers["x-ms-documentdb-query-enablecrosspartition"] = "true";
  }
  return queryDocumentsOriginal(account, req, res, params);
};

// Bridge 6 (speed, not behaviour): the service answers a query that names its documents' ids in one
// partition through its index; the server evaluates every query over every document of the
// container, so such a query slows as the container grows (a write-ceiling run writes thousands,
// and a cell's create reads its documents with one). A query whose WHERE says
// `c.<partition key> = @p AND c.id IN (@a, @b, ...)` is evaluated by the same engine, with the same
// WHERE, over just the documents with those ids in that partition: the answer cannot differ.
const Items = lib("account/items").default;
const queryEverything = Items.prototype.query;
Items.prototype.query = function (params, options) {
  const parent = this._parent.read();
  const text = (params && params.query) || "";
  const keyPath = parent && parent.partitionKey && (parent.partitionKey.paths || [])[0];
  const ids = /\bc\.id\s+IN\s*\(([^)]*)\)/i.exec(text);
  const key = keyPath && /^\/\w+$/.test(keyPath) && new RegExp(`\\bc\\.${keyPath.slice(1)}\\s*=\\s*(@\\w+)`).exec(text);
  const value = (name) => ((params.parameters || []).find((p) => p.name === name) || {}).value;
  const names = ids ? ids[1].split(",").map((n) => n.trim()) : [];
  const partition = key ? value(key[1]) : undefined;
  if (!ids || partition === undefined || / OR /i.test(text) || /\bNOT\b/i.test(text) || !names.every((n) => /^@\w+$/.test(n) && value(n) !== undefined)) {
    return queryEverything.call(this, params, options);
  }
  const candidates = names.map((n) => this._item("/id", value(n), partition).read()).filter(Boolean);
  const compositeIndexes = (parent.indexingPolicy && parent.indexingPolicy.compositeIndexes) || [];
  return this._getQuery(text).exec(candidates, {
    parameters: params.parameters,
    udf: this._userDefinedFunctions(),
    maxItemCount: options.maxItemCount,
    continuation: options.continuation,
    compositeIndexes,
  });
};

// Not bridged, because Paracell's store does not depend on them: single-partition queries ignore
// the partition key header (the store's queries also filter on the tenant), and there is no
// query-plan endpoint (the store issues no aggregate or ORDER BY queries).

const { createHttpServer } = lib("index");
const argv = process.argv.slice(2);
const option = (names, fallback) => {
  const at = argv.findIndex((a) => names.includes(a));
  return at >= 0 && argv[at + 1] !== undefined ? argv[at + 1] : fallback;
};
const host = option(["--host", "-H"], "127.0.0.1");
const port = parseInt(option(["--port", "-p"], "8081"), 10);
const server = createHttpServer({ keepAlive: true });

// Request counting: wraps the server's own request listener.
const counts = new Map();
const header = (req, name) => String(req.headers[name] || "").toLowerCase();
const operationOf = (req, docId) => {
  if (docId !== undefined) {
    return { GET: "read", PUT: "replace", DELETE: "delete" }[req.method];
  }
  if (req.method !== "POST") {
    return req.method === "GET" ? "read-feed" : undefined;
  }
  if (header(req, "x-ms-cosmos-is-batch-request") === "true") return "batch";
  if (header(req, "x-ms-documentdb-isquery") === "true" || header(req, "content-type").startsWith("application/query+json")) {
    return "query";
  }
  return header(req, "x-ms-documentdb-is-upsert") === "true" ? "upsert" : "create";
};
const [serve] = server.listeners("request");
server.removeAllListeners("request");
server.on("request", (req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname === "/_paracell/requests") {
    const body = JSON.stringify(Object.fromEntries(counts.get(url.searchParams.get("container")) || []));
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  const docs = /^\/dbs\/[^/]+\/colls\/([^/]+)\/docs(?:\/([^/]+))?\/?$/.exec(url.pathname);
  const operation = docs && operationOf(req, docs[2]);
  if (operation) {
    const container = decodeURIComponent(docs[1]);
    const perContainer = counts.get(container) || new Map();
    perContainer.set(operation, (perContainer.get(operation) || 0) + 1);
    counts.set(container, perContainer);
  }
  serve(req, res);
});

server.listen(port, host, () => {
  console.log(`cosmosdb (compat ${PINNED}) listening on http://${host}:${server.address().port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
