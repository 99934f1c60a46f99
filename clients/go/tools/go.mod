// The code generators of the Go client, pinned with checksums (go.sum):
// scripts/clients-setup.sh runs `go install tool` here, into .cache/go/bin.
// A module of its own so that users of the client module do not inherit them.
module github.com/jobs-platform/jobs/clients/go/tools

go 1.26.0

tool (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc
	google.golang.org/protobuf/cmd/protoc-gen-go
)

require (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.2 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
