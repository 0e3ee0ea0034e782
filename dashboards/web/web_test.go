package web_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/dashboards/web"
)

// TestFSHasAnIndex: built or not, the embedded site has an index.html at its
// root; unbuilt, it is the page that says how to build the app.
func TestFSHasAnIndex(t *testing.T) {
	site, err := web.FS()
	require.NoError(t, err)
	index, err := fs.ReadFile(site, "index.html")
	require.NoError(t, err)
	_, statErr := fs.Stat(site, "assets")
	if statErr == nil {
		require.Contains(t, string(index), `<div id="root">`, "a built app mounts into #root")
		return
	}
	require.True(t, strings.Contains(string(index), "make web"), "the placeholder says how to build the app")
}
