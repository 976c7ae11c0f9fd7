-- GET /v1/cart with a different session per request (tokens from $TOKENS_FILE, each thread its
-- own share: see tokens.lua). A 2 s warm-up through the balancer with both threads walking the
-- same tokens left most sessions cold for the measured run: their first read slid the session
-- and loaded the cart, about 1,600 and 2,900 extra round trips of that run.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "tokens.lua")

request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/v1/cart", { ["Authorization"] = "Bearer " .. tokens[i] })
end
