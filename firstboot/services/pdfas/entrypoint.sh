#!/bin/sh
# Written by appliance-agent: pdf-as-web's start. pdf-as fetches the documents it signs
# from https://<domain>, so the JVM trusts the appliance's certificate (mounted, and
# imported again at every start: it changes at renewal); then Tomcat runs.
set -e
java=$(readlink -f "$(command -v java)")
store=${java%/bin/java}/lib/security/cacerts
keytool -delete -noprompt -keystore "$store" -storepass changeit -alias appliance-server >/dev/null 2>&1 || true
keytool -importcert -noprompt -keystore "$store" -storepass changeit -alias appliance-server -file /app/import/server.cert.pem
exec /usr/local/tomcat/bin/catalina.sh run
