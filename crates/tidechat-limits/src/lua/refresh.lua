-- Extend the lease ARGV[1] in the lease set KEYS[1].
-- ARGV[1]  lease id, ARGV[2]  limit, ARGV[3]  lease length in ms
-- Returns 1 when the lease was extended, 2 when it had expired and was taken again (there was
-- room), 0 when it had expired and the set is full (the holder runs unaccounted).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local status = 1
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= limit then
    return 0
  end
  status = 2
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return status
