-- GET /v1/cart with a different session per request (tokens from $TOKENS_FILE).
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local i = math.random(1, #tokens)
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/v1/cart", { ["Authorization"] = "Bearer " .. tokens[i] })
end
