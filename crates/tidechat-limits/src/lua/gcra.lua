-- GCRA: one request against the bucket KEYS[1].
-- KEYS[1]  hash {tat = theoretical arrival time, interval = T it was computed with}, both in
--          µs (tat of Redis' clock)
-- ARGV[1]  emission interval T in µs (period / limit), >= 1
-- ARGV[2]  burst (= limit), >= 1
-- Returns {allowed (0|1), remaining, retry_after_us, reset_after_us}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tau = interval * (burst - 1)

-- The key expires exactly when the bucket is full again: a missing key means a full bucket.
local function save(tat)
  redis.call('HSET', KEYS[1], 'tat', string.format('%d', tat), 'interval', string.format('%d', interval))
  redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000))
end

local tat = now
local stored = redis.call('HMGET', KEYS[1], 'tat', 'interval')
if stored[1] then
  tat = math.max(tonumber(stored[1]), now)
  local previous = tonumber(stored[2])
  if previous and previous ~= interval then
    -- The quota changed: keep the number of requests already used, not the time they cost.
    tat = now + math.ceil((tat - now) / previous * interval)
  end
end

local allow_at = tat - tau
if now < allow_at then
  -- Denials leave the state alone, except to record a rescaled TAT.
  if tonumber(stored[2]) ~= interval then
    save(tat)
  end
  return {0, 0, allow_at - now, tat - now}
end

local new_tat = tat + interval
save(new_tat)
local remaining = math.floor((now + tau + interval - new_tat) / interval)
return {1, remaining, 0, new_tat - now}
