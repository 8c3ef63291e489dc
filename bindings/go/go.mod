module github.com/microsnap/microsnap/bindings/go

go 1.24
