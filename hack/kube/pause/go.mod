module sluice.dev/hack/kube/pause

go 1.26.0
