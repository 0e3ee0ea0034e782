// Package web holds the dashboard's static assets, built by `make web` from
// the TypeScript app beside this file and embedded in the uvr binary.
package web

import (
	"embed"
	"fmt"
	"io/fs"
)

// The build (vite, into dist/app/) is ignored by git; dist/placeholder/ is
// committed so that a fresh clone builds and vets without Node, and says how
// to build the real app. Both live under one embedded directory because
// go:embed fails on a pattern that matches nothing.
//
//go:embed all:dist
var dist embed.FS

// FS returns the built app (index.html at its root), or the placeholder page
// when the app was not built.
func FS() (fs.FS, error) {
	dir := "dist/placeholder"
	if _, err := fs.Stat(dist, "dist/app/index.html"); err == nil {
		dir = "dist/app"
	}
	sub, err := fs.Sub(dist, dir)
	if err != nil {
		return nil, fmt.Errorf("web assets: %w", err)
	}
	return sub, nil
}
