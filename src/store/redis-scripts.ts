// Lua scripts for atomic writes. Every key a script touches carries the same hash tag
// ({r:<route>} or {meta}), so each script runs in one slot and also works on Redis Cluster.

/**
 * Conditional, revisioned route write or delete.
 * KEYS: 1 current pointer, 2 revision sequence, 3 history list.
 * ARGV: 1 mode (any|match|absent|present), 2 expected revision, 3 spec JSON ("" = delete),
 *       4 record JSON (action, at, actor, ...), 5 snapshot key prefix (same hash tag; a snapshot is a hash
 *       {spec, at}), 6 max revisions,
 *       7 "1" to write even when the spec is unchanged (rollback).
 * Returns {status, revision, previous}: status 0 precondition failed (revision = current), 1 written over
 *         an existing route (or deleted), 2 nothing to delete, 3 unchanged (revision = current), 4 created
 *         (also a rollback that restores a deleted route); previous = the revision current before the write.
 */
/** The route write as a Lua function, shared by ROUTE_WRITE and ROLLOUT_WRITE (same arguments, same results). */
const WRITE_ROUTE_FN = `
local function write_route(kCur, kSeq, kHist, a1, a2, a3, a4, a5, a6, a7)
local cur = tonumber(redis.call('GET', kCur) or '0')
local mode = a1
if (mode == 'match' and cur ~= tonumber(a2)) or (mode == 'absent' and cur ~= 0) or (mode == 'present' and cur == 0) then
  return {0, cur, cur}
end
local spec = a3
local prefix = a5
if spec == '' then
  if cur == 0 then return {2, 0, 0} end
elseif cur ~= 0 and a7 ~= '1' and redis.call('HGET', prefix .. cur, 'spec') == spec then
  return {3, cur, cur}
end
local seq = tonumber(redis.call('GET', kSeq) or '0')
if seq < cur then seq = cur end
local rev = seq + 1
redis.call('SET', kSeq, rev)
local rec = cjson.decode(a4)
rec['revision'] = rev
if spec == '' then
  redis.call('DEL', kCur)
else
  redis.call('HSET', prefix .. rev, 'spec', spec, 'at', rec['at'])
  redis.call('SET', kCur, rev)
  if cur == 0 and rec['action'] == 'update' then rec['action'] = 'create' end
end
redis.call('LPUSH', kHist, cjson.encode(rec))
local max = tonumber(a6)
local extra = redis.call('LRANGE', kHist, max, -1)
for _, raw in ipairs(extra) do
  local old = cjson.decode(raw)
  if old['revision'] ~= rev then redis.call('DEL', prefix .. old['revision']) end
end
redis.call('LTRIM', kHist, 0, max - 1)
if spec ~= '' and cur == 0 then return {4, rev, cur} end
return {1, rev, cur}
end
`;

export const ROUTE_WRITE = `${WRITE_ROUTE_FN}
return write_route(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
`;

/**
 * Cluster write or delete, with the global version bump, in one step. Specs are canonical JSON,
 * so an unchanged spec is detected by comparing strings. Also keeps the trust-domain index (one
 * cluster per trust domain) and refuses to delete a cluster that route references still name.
 * KEYS: 1 specs hash, 2 updatedAt hash, 3 version counter, 4 trust-domain index (td -> cluster),
 *       5 route references (route -> "c1,c2"), 6 Kubernetes issuer index (issuer -> cluster).
 * ARGV: 1 name, 2 spec JSON ("" = delete), 3 updatedAt, 4 trust domain, 5 Kubernetes issuer ("" = none).
 * Returns {status, version, detail}: status 0 nothing changed, 1 created, 2 replaced, 3 deleted,
 *         4 in use (detail = "route1,route2"), 5 trust domain taken, 6 issuer taken (detail = owner).
 */
export const CLUSTER_WRITE = `
local name = ARGV[1]
local prev = redis.call('HGET', KEYS[1], name)
local prevTd = nil
local prevIss = nil
if prev then
  local d = cjson.decode(prev)
  prevTd = d['trustDomain']
  if type(d['bundle']) == 'table' and type(d['bundle']['kubernetes']) == 'table' then prevIss = d['bundle']['kubernetes']['issuer'] end
end
if ARGV[2] == '' then
  if not prev then return {0, 0, ''} end
  local users = {}
  local refs = redis.call('HGETALL', KEYS[5])
  for i = 1, #refs, 2 do
    for c in string.gmatch(refs[i + 1], '[^,]+') do
      if c == name then table.insert(users, refs[i]) end
    end
  end
  if #users > 0 then table.sort(users); return {4, 0, table.concat(users, ',')} end
  redis.call('HDEL', KEYS[1], name)
  redis.call('HDEL', KEYS[2], name)
  if prevTd and redis.call('HGET', KEYS[4], prevTd) == name then redis.call('HDEL', KEYS[4], prevTd) end
  if prevIss and redis.call('HGET', KEYS[6], prevIss) == name then redis.call('HDEL', KEYS[6], prevIss) end
  return {3, redis.call('INCR', KEYS[3]), ''}
end
local owner = redis.call('HGET', KEYS[4], ARGV[4])
if owner and owner ~= name then return {5, 0, owner} end
if ARGV[5] ~= '' then
  local issOwner = redis.call('HGET', KEYS[6], ARGV[5])
  if issOwner and issOwner ~= name then return {6, 0, issOwner} end
end
if prev == ARGV[2] then return {0, 0, ''} end
if prevTd and prevTd ~= ARGV[4] then redis.call('HDEL', KEYS[4], prevTd) end
if prevIss and prevIss ~= ARGV[5] and redis.call('HGET', KEYS[6], prevIss) == name then redis.call('HDEL', KEYS[6], prevIss) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[6], ARGV[5], name) end
redis.call('HSET', KEYS[4], ARGV[4], name)
redis.call('HSET', KEYS[1], name, ARGV[2])
redis.call('HSET', KEYS[2], name, ARGV[3])
local v = redis.call('INCR', KEYS[3])
if prev then return {2, v, ''} end
return {1, v, ''}
`;

/**
 * Reserves a route's cluster references before its write: every named cluster must exist, and the
 * route's reference set becomes the union of what it had and what it will have, so a concurrent
 * cluster delete is refused while the write is in flight. Settled afterwards by ROUTE_REFS_SET.
 * KEYS: 1 cluster specs hash, 2 route references. ARGV: 1 route name, 2 "c1,c2".
 * Returns {1, ""} or {0, "missing1,missing2"}.
 */
export const ROUTE_REFS_RESERVE = `
local missing = {}
local set = {}
local list = {}
for c in string.gmatch(ARGV[2], '[^,]+') do
  if redis.call('HEXISTS', KEYS[1], c) == 0 then table.insert(missing, c) end
  if not set[c] then set[c] = true; table.insert(list, c) end
end
if #missing > 0 then return {0, table.concat(missing, ',')} end
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then
  for c in string.gmatch(old, '[^,]+') do
    if not set[c] then set[c] = true; table.insert(list, c) end
  end
end
table.sort(list)
redis.call('HSET', KEYS[2], ARGV[1], table.concat(list, ','))
return {1, ''}
`;

/** Sets a route's references to exactly what its current revision names ("" = none). KEYS: 1 route references. ARGV: 1 route, 2 "c1,c2". */
export const ROUTE_REFS_SET = `
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
`;

/**
 * Reads a route's current pointer and its snapshot atomically.
 * KEYS: 1 current pointer. ARGV: 1 snapshot key prefix. Returns nil or {revision, spec, at}.
 */
export const ROUTE_READ = `
local cur = redis.call('GET', KEYS[1])
if not cur then return nil end
local snap = redis.call('HMGET', ARGV[1] .. cur, 'spec', 'at')
return {cur, snap[1], snap[2]}
`;

/**
 * Adds metric deltas once per flush id. KEYS: 1 series hash, 2 values hash, 3 the flush's marker key.
 * ARGV: 1 number of series n, then n (key, json) pairs, then (field, delta) pairs.
 * Returns 1 when applied, 0 when this flush id was already applied (a retry).
 */
export const METRICS_APPLY = `
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', 86400) then return 0 end
local n = tonumber(ARGV[1])
local i = 2
for _ = 1, n do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return 1
`;

/** Takes or renews a lease. KEYS: 1 lock key. ARGV: 1 owner, 2 ttl ms. Returns 1 when held by owner. */
export const LOCK = `
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
`;

/**
 * A rollout step, atomically: compare-and-set on the rollout's version, its new state and events,
 * and (optionally) the route revision that carries its weights, with the route's own precondition.
 * Rollout keys share the route's hash tag, so this is one slot.
 * KEYS: 1 route current, 2 route seq, 3 route history, 4 rollout state, 5 rollout version, 6 rollout events.
 * ARGV: 1 expected rollout version (0 = must not exist), 2 rollout JSON, 3 route spec JSON ("" = no route
 *       write), 4 route record JSON, 5 snapshot prefix, 6 max revisions, 7 expected route revision,
 *       8 max events, 9.. event JSON strings. In the rollout and event JSON, "__ROUTE_REVISION__" and
 *       "__VERSION__" (quoted) are replaced by the route revision and the rollout's new version.
 * Returns {status, routeRevision, version}: 0 rollout version conflict (version = current),
 *         2 route precondition failed (routeRevision = current), 1 written.
 */
export const ROLLOUT_WRITE = `${WRITE_ROUTE_FN}
local v = tonumber(redis.call('GET', KEYS[5]) or '0')
if v ~= tonumber(ARGV[1]) then return {0, 0, v} end
local routeRev = 0
if ARGV[3] ~= '' then
  local res = write_route(KEYS[1], KEYS[2], KEYS[3], 'match', ARGV[7], ARGV[3], ARGV[4], ARGV[5], ARGV[6], '0')
  if res[1] == 0 then return {2, res[2], v} end
  routeRev = res[2]
end
local nv = v + 1
-- JSON is written verbatim (cjson would turn empty arrays into objects); the placeholders the
-- caller left for what only this script knows are filled in by string replacement.
local rr = routeRev
if rr == 0 then rr = tonumber(ARGV[7]) or 0 end
local function fill(json)
  json = string.gsub(json, '"__ROUTE_REVISION__"', tostring(rr))
  json = string.gsub(json, '"__VERSION__"', tostring(nv))
  return json
end
redis.call('SET', KEYS[4], fill(ARGV[2]))
redis.call('SET', KEYS[5], nv)
for i = 9, #ARGV do redis.call('RPUSH', KEYS[6], fill(ARGV[i])) end
redis.call('LTRIM', KEYS[6], -tonumber(ARGV[8]), -1)
return {1, routeRev, nv}
`;

/**
 * Claims a route rule for rollout `name`: when free, already its, held by `replace` (a finished
 * rollout), or held by a name the rollout index does not have (a claim left by a creation that
 * failed). KEYS: 1 rule claims, 2 rollout name index. ARGV: 1 route/rule, 2 name, 3 replace ("").
 * Returns the owner.
 */
export const CLAIM = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == false or cur == ARGV[2] or (ARGV[3] ~= '' and cur == ARGV[3]) or redis.call('HEXISTS', KEYS[2], cur) == 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return ARGV[2]
end
return cur
`;

// A new rollout's name recorded in the index, only while its rule's claim is still its own.
// KEYS: rollout name index, rule claims. ARGV: name, route, route/rule.
// Returns {1, ""} when recorded, {0, ""} when the name is taken, {-1, owner} when the claim is another's.
export const ROLLOUT_INDEX = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {0, ''} end
local owner = redis.call('HGET', KEYS[2], ARGV[3])
if owner ~= ARGV[1] then return {-1, owner or ''} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1, ''}
`;
