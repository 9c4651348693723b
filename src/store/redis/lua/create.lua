if redis.call('EXISTS', KEYS[1]) == 1 then
  if live(ARGV[1]) then return 0 end
  redis.call('DEL', KEYS[1])
end
hset_all(KEYS[1], ARGV, 3)
expire_at(KEYS[1], ARGV[2], ARGV[1])
return 1
