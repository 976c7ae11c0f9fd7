-- POST /v1/cart/items: one unit of one of 100 SKUs into one of many carts.
--
-- Each wrk thread takes its own share of the tokens (every WRK_THREADS-th, default 2), so no
-- two requests in flight change one cart, as with real shoppers and the independent check
-- (each connection its own session). Without it both threads walk the same tokens in step:
-- wrk seeds every thread's math.random alike.
local next_thread = 0
function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

local tokens = {}
local i
function init(args)
  local threads = tonumber(os.getenv("WRK_THREADS") or "2")
  local all = {}
  for line in io.lines(os.getenv("TOKENS_FILE")) do all[#all + 1] = line end
  for k = 1, #all do
    if (k - 1) % threads == thread_index then tokens[#tokens + 1] = all[k] end
  end
  i = math.random(1, #tokens)
end

request = function()
  i = i % #tokens + 1
  local body = string.format('{"sku":"LG-%05d","quantity":1}', math.random(0, 99))
  return wrk.format("POST", "/v1/cart/items",
    { ["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json" }, body)
end
