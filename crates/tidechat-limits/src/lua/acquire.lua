-- Take one concurrency slot in the lease set KEYS[1] (member = lease id, score = expiry in ms
-- of Redis' clock).
-- ARGV[1]  lease id, ARGV[2]  limit, ARGV[3]  lease length in ms
-- Returns {acquired (0|1), in_use (including the new lease when acquired)}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local in_use = redis.call('ZCARD', KEYS[1])
if in_use >= limit then
  return {0, in_use}
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
-- The set dies with its longest-lived lease, so crashed holders leave nothing behind.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return {1, in_use + 1}
