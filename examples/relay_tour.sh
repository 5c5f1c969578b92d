#!/usr/bin/env bash
# The journey of one message, by hand, with real clients:
#   swaks submits it -> the DNS stub names beta.test's MX -> the relay delivers it ->
#   it is read back over POP3 and IMAP with curl, and its links and journey are shown.
# Starts its own `mail-sandbox serve` on free ports with a throw-away data file, reads the
# ports from the ready line, and stops it on exit.
#
#   bash examples/relay_tour.sh
#   MAIL_SANDBOX="python -m sandbox" bash examples/relay_tour.sh   # from a checkout
set -euo pipefail

read -r -a MS <<< "${MAIL_SANDBOX:-mail-sandbox}"
PYTHON=${PYTHON:-python3}
for tool in swaks curl "$PYTHON"; do
    command -v "$tool" > /dev/null || { echo "relay_tour: $tool is not installed" >&2; exit 1; }
done

work=$(mktemp -d)
data="$work/sandbox.sqlite3"
pid=""
cleanup() {
    if [[ -n $pid ]]; then
        kill "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
    fi
    exec 3<&- 2> /dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The ready line arrives through a FIFO: no polling, no sleeping. fd 3 stays open so the
# server can keep its stdout.
mkfifo "$work/ready"
"${MS[@]}" serve --data "$data" --smtp-port 0 --smtps-port 0 --pop3-port 0 --pop3s-port 0 \
    --imap-port 0 --imaps-port 0 --dns-port 0 --mx-port 0 --http-port 0 \
    > "$work/ready" 2> "$work/serve.log" &
pid=$!
exec 3< "$work/ready"
if ! IFS= read -r -t 30 ready <&3; then
    echo "relay_tour: serve did not start:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi
port() { "$PYTHON" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]][1])' "$ready" "$1"; }
smtp=$(port smtp)
pop3=$(port pop3)
imap=$(port imap)
dns=$(port dns)
echo "== sandbox ready: SMTP $smtp, POP3 $pop3, IMAP $imap, DNS $dns"

echo "== 1. submit with swaks (larry is at a sandbox domain, the CEO at a real one: held)"
swaks --silent 2 --server "127.0.0.1:$smtp" --from mikaela@alpha.test \
    --to larry@beta.test,ceo@realcompany.com --header "Subject: Relay tour" \
    --body "Hello Larry, the tour continues at https://docs.example/relay-tour."

echo "== 2. what the relay asks the DNS stub"
echo "MX of beta.test:"
"${MS[@]}" dns beta.test MX --dns-port "$dns"
echo "A of mx.beta.test:"
"${MS[@]}" dns mx.beta.test A --dns-port "$dns"
echo "realcompany.com (outside every sandbox zone):"
"${MS[@]}" dns realcompany.com MX --dns-port "$dns"

echo "== 3. wait for the relayed copy in larry@beta.test's INBOX"
json=$("${MS[@]}" wait --to larry@beta.test --subject "Relay tour" --timeout 15 --json --data "$data")
id=$("$PYTHON" -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$json")
"${MS[@]}" show "$id" --data "$data"

echo "== 4. its links"
"${MS[@]}" links "$id" --data "$data"

echo "== 5. read it over POP3"
curl -sS --max-time 10 --user larry@beta.test:any "pop3://127.0.0.1:$pop3/1"

echo "== 6. and over IMAP"
curl -sS --max-time 10 --user larry@beta.test:any "imap://127.0.0.1:$imap/INBOX;UID=1"

echo "== 7. every copy: larry's, the held one, mikaela's Sent"
"${MS[@]}" messages --data "$data"
echo "== tour complete"
