# shellcheck shell=bash
# The cluster's container registry (sourced by scripts/cluster): Debian's docker-registry
# (distribution v2) inside the network namespace, over TLS with a certificate of the cluster's CA
# and htpasswd basic auth; forwarded to 127.0.0.1:$registry_port on the host, so the same
# reference works from the host (skopeo, buildah) and from containerd on the node. Pods reach it
# through the Service kube-system/registry ($registry_cluster_ip, same port).

registry_address() { echo "127.0.0.1:$registry_port"; }

registry_v2() {
	curl -fsS --max-time 5 --cacert "$dir/pki/ca.crt" -u "sluice:$(cat "$dir/registry/password")" \
		"https://$(registry_address)/v2/"
}

registry_up() {
	local reg="$dir/registry"
	mkdir -p "$reg/data"
	local secret
	for secret in password http-secret; do
		if [[ ! -f "$reg/$secret" ]]; then
			openssl rand -hex 16 >"$reg/$secret.tmp" && mv "$reg/$secret.tmp" "$reg/$secret"
		fi
	done
	local password auth
	password="$(cat "$reg/password")"
	if [[ ! -f "$reg/htpasswd" ]]; then
		htpasswd -Bbn sluice "$password" >"$reg/htpasswd" 2>/dev/null || die "htpasswd failed"
	fi
	auth="$(printf 'sluice:%s' "$password" | base64 -w0)"
	# containers-auth.json for skopeo, buildah and podman; also valid as a .dockerconfigjson.
	jq -n --arg auth "$auth" --arg a "$(registry_address)" --arg b "$registry_cluster_ip:$registry_port" \
		--arg c "registry.kube-system.svc:$registry_port" --arg d "$node_ip:$registry_port" \
		'{auths: {($a): {auth: $auth}, ($b): {auth: $auth}, ($c): {auth: $auth}, ($d): {auth: $auth}}}' |
		write_file "$reg/auth.json"
	write_file "$reg/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $reg/data
  delete:
    enabled: true
http:
  addr: 0.0.0.0:$registry_port
  secret: $(cat "$reg/http-secret")
  tls:
    certificate: $dir/pki/registry.crt
    key: $dir/pki/registry.key
auth:
  htpasswd:
    realm: sluice-registry
    path: $reg/htpasswd
EOF
	net_forward_up forward-registry "$registry_port"
	# The registry reads REGISTRY_* variables as settings (REGISTRY_AUTH_FILE from
	# `scripts/cluster env` would be taken for auth.file): it gets only its config file.
	local variable
	for variable in $(compgen -e | grep '^REGISTRY_' || true); do unset "$variable"; done
	start registry netns "$(command -v docker-registry)" serve "$reg/config.yml"
	wait_for registry 30 "the registry to answer /v2/" registry_v2

	kubectl apply --server-side --field-manager cluster-script -f - >/dev/null <<EOF ||
apiVersion: v1
kind: Service
metadata:
  name: registry
  namespace: kube-system
spec:
  clusterIP: $registry_cluster_ip
  ports:
  - name: https
    port: $registry_port
    targetPort: $registry_port
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: registry
  namespace: kube-system
  labels:
    kubernetes.io/service-name: registry
    endpointslice.kubernetes.io/managed-by: cluster-script
addressType: IPv4
ports:
- name: https
  port: $registry_port
  protocol: TCP
endpoints:
- addresses: ["$node_ip"]
  conditions:
    ready: true
EOF
		die "could not create the registry's Service"
}
