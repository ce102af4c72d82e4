"""The Lua scripts behind every atomic operation on Redis.

Each script reads the time with ``TIME`` (milliseconds, fractional), never a client's clock, so
processes with skewed clocks agree. All keys a script touches share one hash tag, so the scripts
run on Redis Cluster. Floats are returned as strings (Redis truncates Lua numbers to integers).
"""

from __future__ import annotations

from .redis_store import Script

__all__ = [
    "CB_ACQUIRE",
    "CB_OUTCOME",
    "CB_READ",
    "CB_RENEW",
    "CB_RESET",
    "LEDGER_RESERVE",
    "LEDGER_SETTLE",
    "RL_ACQUIRE",
    "RL_RELEASE",
]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
"""

# --------------------------------------------------------------------------- rate limits
#
# One scope (a deployment, a user, a tenant, a key) = a hash KEYS[1] with, per dimension
# (rpm, tpm, itpm, otpm, rps, rpd, tpd), the GCRA "theoretical arrival time" in ms, the learned
# limit ("L<dim>", the four per-minute dimensions only) and a block ("blk", ms) learned from
# provider headers; and a sorted set KEYS[2] of the permits holding a concurrency slot, scored
# by their lease expiry.
#
# GCRA with a window W per dimension (60 s; 1 s for rps; a day for rpd and tpd): a cost of n
# units at a limit of L per window moves the arrival time by n * W / L; the call is admitted
# while the arrival time stays within W of now (a full window's burst, as providers allow).

_DIMS = (
    "local dims = {'rpm', 'tpm', 'itpm', 'otpm', 'rps', 'rpd', 'tpd'}\n"
    "local wins = {60000, 60000, 60000, 60000, 1000, 86400000, 86400000}\n"
    "local W = 60000\nlocal N = 7\n"
)

#: ARGV: permit id, lease ms, concurrency limit (0: none), (limit, cost) x 7, key ttl ms,
#: longest block ms (a longer stored block is cut back to it).
#: Returns {1, '0', ''} admitted, {0, wait_ms, dim} refused, {-1, limit, dim} never fits (a
#: configured limit only: a cost above a learned limit is sent, the provider decides). Learned
#: limits ("L<dim>") hold until "Lexp" (ms), ``max_block`` after the last answer announcing them.
RL_ACQUIRE = Script(
    "rl_acquire",
    _NOW
    + _DIMS
    + """
local h, z = KEYS[1], KEYS[2]
local blk = tonumber(redis.call('HGET', h, 'blk') or '0')
if blk > now then
  local cap = tonumber(ARGV[19])
  if blk - now > cap then
    blk = now + cap
    redis.call('HSET', h, 'blk', string.format('%.17g', blk))
  end
  return {0, tostring(blk - now), 'blocked'}
end
local upd = {}
local wait, wdim = 0, ''
local lexp = tonumber(redis.call('HGET', h, 'Lexp') or '0')
local learned = lexp > now
for i = 1, N do
  local lim = tonumber(ARGV[2 + 2 * i])
  local cost = tonumber(ARGV[3 + 2 * i])
  local configured = lim > 0
  if not configured then
    lim = 0
    if learned and i <= 4 then
      lim = tonumber(redis.call('HGET', h, 'L' .. dims[i]) or '0')
    end
  end
  if lim > 0 and cost > 0 and cost > lim and not configured then lim = 0 end
  if lim > 0 and cost > 0 then
    if cost > lim then return {-1, tostring(lim), dims[i]} end
    local w = wins[i]
    local tat = tonumber(redis.call('HGET', h, dims[i]) or '0')
    if tat < now then tat = now end
    local nt = tat + cost * w / lim
    local over = nt - now - w
    if over > 0 and not configured and over > lexp - now then over = lexp - now end
    if over > 0 then
      if over > wait then wait = over; wdim = dims[i] end
    else
      upd[#upd + 1] = dims[i]
      upd[#upd + 1] = string.format('%.17g', nt)
    end
  end
end
if wdim ~= '' then return {0, tostring(wait), wdim} end
local cl = tonumber(ARGV[3])
if cl > 0 then
  local lease = tonumber(ARGV[2])
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  if redis.call('ZCARD', z) >= cl then return {0, '0', 'concurrent'} end
  redis.call('ZADD', z, now + lease, ARGV[1])
  redis.call('PEXPIRE', z, math.floor(lease + W))
end
if #upd > 0 then redis.call('HSET', h, unpack(upd)) end
redis.call('PEXPIRE', h, tonumber(ARGV[18]))
return {1, '0', ''}
""",
    once=True,
)

#: ARGV: permit id ('' when it holds no slot), (limit, delta) x 7, block ms, learned limit x 4
#: (0: none), units used per the provider x 4 (-1: unknown), key ttl ms, longest block ms (how
#: long learned limits hold). Learned limits and units used are for the per-minute dimensions.
RL_RELEASE = Script(
    "rl_release",
    _NOW
    + _DIMS
    + """
local h, z = KEYS[1], KEYS[2]
if ARGV[1] ~= '' then redis.call('ZREM', z, ARGV[1]) end
local lexp = tonumber(redis.call('HGET', h, 'Lexp') or '0')
local fresh = false
for i = 1, 4 do
  if tonumber(ARGV[16 + i]) > 0 then fresh = true end
end
if fresh then
  if lexp <= now then
    for i = 1, 4 do
      if tonumber(ARGV[2 * i]) <= 0 then redis.call('HDEL', h, dims[i]) end
    end
  end
  lexp = now + tonumber(ARGV[26])
  redis.call('HSET', h, 'Lexp', string.format('%.17g', lexp))
end
for i = 1, N do
  local learned = 0
  local used = -1
  if i <= 4 then
    learned = tonumber(ARGV[16 + i])
    used = tonumber(ARGV[20 + i])
  end
  if learned > 0 then redis.call('HSET', h, 'L' .. dims[i], tostring(learned)) end
  local lim = tonumber(ARGV[2 * i])
  if lim <= 0 then
    lim = 0
    if lexp > now and i <= 4 then
      lim = tonumber(redis.call('HGET', h, 'L' .. dims[i]) or '0')
    end
  end
  if lim > 0 then
    local w = wins[i]
    local d = tonumber(ARGV[2 * i + 1])
    local tat = tonumber(redis.call('HGET', h, dims[i]) or '0')
    local nt = tat
    if d > 0 then
      if nt < now then nt = now end
      nt = nt + d * w / lim
    elseif d < 0 and tat > 0 then
      nt = tat + d * w / lim
    end
    if used >= 0 then
      local floor = now + used * w / lim
      if floor > nt then nt = floor end
    end
    if nt ~= tat then redis.call('HSET', h, dims[i], string.format('%.17g', nt)) end
  end
end
local block = tonumber(ARGV[16])
if block > 0 then
  local till = now + block
  if till > tonumber(redis.call('HGET', h, 'blk') or '0') then
    redis.call('HSET', h, 'blk', string.format('%.17g', till))
  end
end
redis.call('PEXPIRE', h, tonumber(ARGV[25]))
return 1
""",
    once=True,
)

# --------------------------------------------------------------------------- breakers
#
# KEYS[1]: hash st (0 closed, 1 open, 2 half-open), gen, op (opened at, ms), f (consecutive
# failures), s (probe successes); KEYS[2]: sorted set of probe tokens scored by lease expiry,
# so a process that dies during its probe cannot hold the half-open state forever.
# Common ARGV: failure threshold, recovery ms, max probes, probe lease ms, key ttl ms.
# Every script returns a snapshot {st, gen, open_remaining_ms, f, admitted, epoch, version}:
# every write bumps the version, so a process never lets an older snapshot (one that arrived
# late) overwrite a newer one; the epoch changes when the hash is created anew (expiry, a
# restarted Redis). Every script, a read too, creates the hash when it is missing: a snapshot
# of no hash has no epoch to be ordered by, so arriving after the snapshots of the writes that
# followed it, it would show closed a breaker those writes had opened.

_CB_LOAD = """
local h, p = KEYS[1], KEYS[2]
local v = redis.call('HMGET', h, 'st', 'gen', 'op', 'f', 's', 'e', 'v')
local st = tonumber(v[1] or '0')
local gen = tonumber(v[2] or '0')
local op = tonumber(v[3] or '0')
local f = tonumber(v[4] or '0')
local s = tonumber(v[5] or '0')
local epoch = v[6] or '0'
local ver = tonumber(v[7] or '0')
local rec = tonumber(ARGV[2])
local function rem()
  if st == 1 then return tostring(math.max(0, op + rec - now)) end
  return '0'
end
local function bump()
  if epoch == '0' then
    epoch = string.format('%.17g', now)
    redis.call('HSET', h, 'e', epoch)
  end
  ver = redis.call('HINCRBY', h, 'v', 1)
  redis.call('PEXPIRE', h, tonumber(ARGV[5]))
end
local function snap(admitted)
  return {st, gen, rem(), f, admitted, epoch, ver}
end
if epoch == '0' then bump() end
"""

#: ARGV[6]: probe token. admitted: 1 a normal call, 2 a probe, 0 refused. A token that holds a
#: live probe is admitted again (its lease renewed): redis-py sends the acquire again when its
#: answer is lost, and refused then, the caller would run no probe while its token held the
#: only one -- every caller refused until the lease ran out.
CB_ACQUIRE = Script(
    "cb_acquire",
    _NOW
    + _CB_LOAD
    + """
if st == 0 then return snap(1) end
if st == 1 then
  if op + rec > now then return snap(0) end
  st = 2; gen = gen + 1; s = 0
  redis.call('HSET', h, 'st', 2, 'gen', gen, 's', 0)
  redis.call('DEL', p)
  bump()
end
redis.call('ZREMRANGEBYSCORE', p, '-inf', now)
if redis.call('ZSCORE', p, ARGV[6]) then
  redis.call('ZADD', p, 'XX', now + tonumber(ARGV[4]), ARGV[6])
  redis.call('PEXPIRE', p, tonumber(ARGV[4]) + 1000)
  return snap(2)
end
if redis.call('ZCARD', p) + s >= tonumber(ARGV[3]) then
  local r = snap(0)
  r[3] = tostring(math.min(1000, rec))
  return r
end
redis.call('ZADD', p, now + tonumber(ARGV[4]), ARGV[6])
redis.call('PEXPIRE', p, tonumber(ARGV[4]) + 1000)
bump()
return snap(2)
""",
)

#: ARGV[6]: 's' success, 'f' failure, 'r' release; ARGV[7]: the permit's generation;
#: ARGV[8]: '1' for a probe; ARGV[9]: its token ('' for a probe a process admitted from its
#: local view of an expired open state); ARGV[10]: the outcome's unique id. KEYS[3]: the ids
#: applied in the last minute -- redis-py sends a command again when the connection drops
#: before the answer, and an outcome seen twice is applied once.
CB_OUTCOME = Script(
    "cb_outcome",
    _NOW
    + _CB_LOAD
    + """
local o = KEYS[3]
if redis.call('ZSCORE', o, ARGV[10]) then return snap(0) end
redis.call('ZREMRANGEBYSCORE', o, '-inf', now)
redis.call('ZADD', o, now + 60000, ARGV[10])
redis.call('PEXPIRE', o, 60000)
local kind, pgen, probe, token = ARGV[6], tonumber(ARGV[7]), ARGV[8] == '1', ARGV[9]
if probe and token == '' then
  if st == 1 and pgen == gen and op + rec <= now then
    st = 2; gen = gen + 1; s = 0
    redis.call('HSET', h, 'st', 2, 'gen', gen, 's', 0)
    redis.call('DEL', p)
    bump()
    pgen = gen
  elseif st == 2 and pgen + 1 == gen then
    pgen = gen
  end
end
if pgen ~= gen then return snap(0) end
if kind == 'r' then
  if probe and token ~= '' then redis.call('ZREM', p, token) end
  return snap(0)
end
local function open()
  st = 1; gen = gen + 1; op = now; f = 0; s = 0
  redis.call('HSET', h, 'st', 1, 'gen', gen, 'op', string.format('%.17g', now), 'f', 0, 's', 0)
  redis.call('DEL', p)
end
if probe then
  if token ~= '' then redis.call('ZREM', p, token) end
  if kind == 'f' then
    open()
  else
    s = s + 1
    if s >= tonumber(ARGV[3]) then
      st = 0; gen = gen + 1; f = 0; s = 0
      redis.call('HSET', h, 'st', 0, 'gen', gen, 'f', 0, 's', 0)
      redis.call('DEL', p)
    else
      redis.call('HSET', h, 's', s)
    end
  end
  bump()
elseif st == 0 then
  if kind == 'f' then
    f = f + 1
    if f >= tonumber(ARGV[1]) then open() else redis.call('HSET', h, 'f', f) end
    bump()
  elseif f > 0 then
    f = 0
    redis.call('HSET', h, 'f', 0)
    bump()
  end
end
return snap(0)
""",
)

CB_RESET = Script(
    "cb_reset",
    _NOW
    + _CB_LOAD
    + """
st, gen, f, s = 0, gen + 1, 0, 0
redis.call('HSET', h, 'st', 0, 'gen', gen, 'f', 0, 's', 0)
redis.call('DEL', p)
bump()
return snap(0)
""",
)

CB_READ = Script("cb_read", _NOW + _CB_LOAD + "return snap(0)\n")

#: A live probe extends its lease: KEYS[2] the probe set; ARGV: token, lease ms. Returns 1, or
#: 0 when the lease is gone (it expired, or the breaker changed state): then it stays gone.
CB_RENEW = Script(
    "cb_renew",
    _NOW
    + """
local p = KEYS[2]
local score = redis.call('ZSCORE', p, ARGV[1])
if not score or tonumber(score) <= now then return 0 end
redis.call('ZADD', p, 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', p, tonumber(ARGV[2]) + 1000)
return 1
""",
)

# --------------------------------------------------------------------------- budgets
#
# KEYS: one hash per (budget, subject, period) with s (spent) and r (reserved) in USD.
# All keys of a namespace share one hash tag, so the multi-key check-and-reserve is atomic
# (and runs on a Cluster).

#: ARGV: amount, then (limit, ttl ms) per key. Returns -1 when reserved, else the 0-based
#: index of the first key that would pass its limit (nothing is reserved then).
LEDGER_RESERVE = Script(
    "ledger_reserve",
    """
local amt = tonumber(ARGV[1])
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 's', 'r')
  local used = tonumber(v[1] or '0') + tonumber(v[2] or '0')
  if used + amt > tonumber(ARGV[2 * i]) + 1e-12 then return i - 1 end
end
for i = 1, #KEYS do
  redis.call('HINCRBYFLOAT', KEYS[i], 'r', ARGV[1])
  local ttl = tonumber(ARGV[2 * i + 1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return -1
""",
    once=True,
)

#: ARGV: reserved amount to release, actual amount spent, then a ttl ms per key.
LEDGER_SETTLE = Script(
    "ledger_settle",
    """
local reserved, actual = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, #KEYS do
  local r = tonumber(redis.call('HGET', KEYS[i], 'r') or '0') - reserved
  if r < 1e-12 then r = 0 end
  redis.call('HSET', KEYS[i], 'r', string.format('%.17g', r))
  if actual ~= 0 then redis.call('HINCRBYFLOAT', KEYS[i], 's', ARGV[2]) end
  local ttl = tonumber(ARGV[2 + i])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
""",
    once=True,
)
