module github.com/wecomkit/wecom

go 1.24.0

require (
	github.com/go-resty/resty/v2 v2.17.2
	golang.org/x/sync v0.19.0
)

require golang.org/x/net v0.43.0 // indirect
