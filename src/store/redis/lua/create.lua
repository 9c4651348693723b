local v = read(KEYS[1])
if v == false then return -2 end
if v and live(v, ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
