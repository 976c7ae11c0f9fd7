-- POST /v1/cart/items: one unit of one of 100 SKUs into one of many carts.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local i = math.random(1, #tokens)
request = function()
  i = i % #tokens + 1
  local body = string.format('{"sku":"LG-%05d","quantity":1}', math.random(0, 99))
  return wrk.format("POST", "/v1/cart/items",
    { ["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json" }, body)
end
