"""The Lua scripts of ``RedisBackend``: the sliding-window log of ``_ratelimit_window``, atomically in Redis.

Keys (``KEY_NAMES``, in this order, all under one hash tag): ``inflight`` (sorted set: reservation id by
reservation time), ``expiring`` (sorted set: settled and phantom entries by expiry), ``requests`` and
``tokens`` (hashes: the amounts of each entry), ``used`` (hash: running totals ``r`` and ``t``), ``pause``
(string: the time until which a ``retry-after`` holds everything). Times are milliseconds; ``now`` is the
first argument, or Redis's ``TIME`` when it is negative. Each script first drops what has expired, then
does its one job, then renews the TTL of every key, so an abandoned budget disappears on its own.
``SETTLE`` is told when the request was sent as ``sent_ago`` (a duration measured by the settling process, so
it needs no clock shared with Redis) and the ``arrival_allowance`` of the window, computed in Python.
Scripts answer strings (a Lua number would be truncated to an integer reply).
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "KEY_NAMES", "OBSERVE", "SETTLE"]

KEY_NAMES = ("inflight", "expiring", "requests", "tokens", "used", "pause")

_PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end  -- Redis 5-6: TIME, then writes
local KI, KE, KR, KT, KU, KP = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local function clock(given)
  local now = tonumber(given)
  if now < 0 then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  end
  return now
end
local function amount(key, member) return tonumber(redis.call('HGET', key, member) or '0') end
local function forget(member)
  local r, t = amount(KR, member), amount(KT, member)
  redis.call('HDEL', KR, member)
  redis.call('HDEL', KT, member)
  if r ~= 0 then redis.call('HINCRBY', KU, 'r', -r) end
  if t ~= 0 then redis.call('HINCRBY', KU, 't', -t) end
end
local function expire(now, window, timeout)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KE, '-inf', now)) do
    forget(m)
    redis.call('ZREM', KE, m)
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KI, '-inf', now - window - timeout)) do
    forget(m)
    redis.call('ZREM', KI, m)
  end
end
local function charge(member, expires, r, t)
  if r <= 0 and t <= 0 then return end
  redis.call('ZADD', KE, expires, member)
  redis.call('HSET', KR, member, r)
  redis.call('HSET', KT, member, t)
  redis.call('HINCRBY', KU, 'r', r)
  redis.call('HINCRBY', KU, 't', t)
end
local function keep(ttl)
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], math.ceil(ttl)) end
end
local function used(field) return tonumber(redis.call('HGET', KU, field) or '0') end
local now = clock(ARGV[1])
local window, timeout = tonumber(ARGV[2]), tonumber(ARGV[3])
expire(now, window, timeout)
"""

# ARGV: now, window, timeout, rpm, tpm, rid, tokens, commit, recheck  (ms; -1 = none)
ACQUIRE = (
    _PRELUDE
    + """
local rpm, tpm = tonumber(ARGV[4]), tonumber(ARGV[5])
local rid, tokens, commit, recheck = ARGV[6], tonumber(ARGV[7]), ARGV[8] == '1', tonumber(ARGV[9])
local paused = tonumber(redis.call('GET', KP) or '-1')
if paused > now then return tostring(paused - now) end
local need_r, need_t = 0, 0
if rpm >= 0 then need_r = used('r') + 1 - rpm end
if tpm >= 0 then need_t = used('t') + tokens - math.max(tpm, tokens) end
if need_r <= 0 and need_t <= 0 then
  if commit then
    redis.call('ZADD', KI, now, rid)
    redis.call('HSET', KR, rid, 1)
    redis.call('HSET', KT, rid, tokens)
    redis.call('HINCRBY', KU, 'r', 1)
    redis.call('HINCRBY', KU, 't', tokens)
    keep(window + timeout + 1000)
  end
  return '0'
end
local settled = redis.call('ZRANGE', KE, 0, -1, 'WITHSCORES')
local flying = redis.call('ZRANGE', KI, 0, -1, 'WITHSCORES')
local i, j, fr, ft = 1, 1, 0, 0
local soonest = now + recheck
while i <= #settled or j <= #flying do
  local member, at
  local fa = nil
  if j <= #flying then fa = math.max(tonumber(flying[j + 1]) + window, soonest) end
  if i <= #settled and (fa == nil or tonumber(settled[i + 1]) <= fa) then
    member, at, i = settled[i], tonumber(settled[i + 1]), i + 2
  else
    member, at, j = flying[j], fa, j + 2
  end
  fr = fr + amount(KR, member)
  ft = ft + amount(KT, member)
  if fr >= need_r and ft >= need_t then return tostring(math.max(at - now, 0)) end
end
return tostring(window)
"""
)

# ARGV: now, window, timeout, rid, actual, mode ('settle' | 'cancel'), sent_ago, allowance  (ms; -1 = unknown)
SETTLE = (
    _PRELUDE
    + """
local rid, actual, mode = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local sent_ago, allowance = tonumber(ARGV[7] or '-1'), tonumber(ARGV[8] or '0')
local found = redis.call('ZSCORE', KI, rid)
local r = 0
if found then
  r = amount(KR, rid)
  forget(rid)
  redis.call('ZREM', KI, rid)
end
if mode == 'settle' then
  if found then
    -- the request counts from its latest possible arrival (see request_counted_at), its tokens from now
    local counted = now
    if sent_ago >= 0 then
      local sent = math.min(math.max(now - sent_ago, tonumber(found)), now)
      counted = sent + math.min(now - sent, allowance)
    end
    charge('req:' .. rid, counted + window, r, 0)
    charge(rid, now + window, 0, actual)
  else
    charge('late:' .. rid, now + window, 0, actual)
  end
end
keep(window + timeout + 1000)
return '0'
"""
)

# ARGV: now, window, timeout, rpm, tpm, id, remaining_r, reset_r, remaining_t, reset_t, retry_after
OBSERVE = (
    _PRELUDE
    + """
local rpm, tpm, id = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local rem_r, reset_r = tonumber(ARGV[7]), tonumber(ARGV[8])
local rem_t, reset_t = tonumber(ARGV[9]), tonumber(ARGV[10])
local retry_after = tonumber(ARGV[11])
local horizon = window + timeout
if retry_after > 0 then
  local pause = math.min(retry_after, horizon)
  if now + pause > tonumber(redis.call('GET', KP) or '-1') then
    redis.call('SET', KP, tostring(now + pause), 'PX', math.ceil(pause) + 1)
  end
end
local function lasting(reset) if reset < 0 then return window end return math.min(reset, horizon) end
if rem_r >= 0 and rpm >= 0 then
  charge(id .. ':r', now + lasting(reset_r), (rpm - used('r')) - rem_r, 0)
end
if rem_t >= 0 and tpm >= 0 then
  charge(id .. ':t', now + lasting(reset_t), 0, (tpm - used('t')) - rem_t)
end
keep(window + timeout + 1000)
return '0'
"""
)
