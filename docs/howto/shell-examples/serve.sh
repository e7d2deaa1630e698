#!/bin/sh
# Start a server on a port that localport keeps for it, wait until it listens, then use it.
set -eu

# Reserve a free port, sticky under the name "api", and keep it for the server (30 s at most).
PORT=$(localport reserve --name api --hold 30)

python3 -m http.server "$PORT" --bind 127.0.0.1 >server.log 2>&1 &
SERVER=$!
# On the way out: stop the server, and end the holder if it is still there (it lets go by
# itself once it sees the server listen, but a server that stops first leaves it holding the
# port until its time is up).
trap 'kill "$SERVER"; localport release "$PORT" 2>/dev/null || true' EXIT

# Wait until the server listens; the holder's RESERVED row does not count.
until localport who "$PORT" --json | jq -e '.holders | any(.status == "LISTEN")' >/dev/null; do
    kill -0 "$SERVER"  # fails, and ends the script (set -e), if the server has exited
    sleep 0.1
done

curl -fsS "http://127.0.0.1:$PORT/" >/dev/null
echo "the server answers on port $PORT"
