-- POST /v1/cart/items: one unit of one of 100 SKUs into one of many carts (tokens from
-- $TOKENS_FILE, each thread its own share, so no two requests in flight change one cart: see
-- tokens.lua).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "tokens.lua")

request = function()
  i = i % #tokens + 1
  local body = string.format('{"sku":"LG-%05d","quantity":1}', math.random(0, 99))
  return wrk.format("POST", "/v1/cart/items",
    { ["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json" }, body)
end
