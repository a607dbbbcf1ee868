#!/bin/sh
# GET /cgi-bin/db: one query of Postgres at $DATABASE_URL per request (busybox httpd runs this per request, with the
# container's environment). 200 "<VERSION> db-ok"; 503 with psql's first line when the database does not answer.
if answer=$(psql "$DATABASE_URL" -X -q -tA -c "SELECT 'db-ok'" 2>&1); then
  printf 'Content-Type: text/plain\r\n\r\n%s %s\n' "$VERSION" "$answer"
else
  printf 'HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\n%s\n' "$(echo "$answer" | head -n 1)"
fi
