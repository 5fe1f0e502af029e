package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/mirrord/mirrord/generators"
)

// ErrStarting: the daemon answers on its socket but does not serve the
// store yet (it waits for the store's lock, which another process holds).
var ErrStarting = errors.New("the mirrord daemon is starting")

// startingHeader marks the answers of a daemon that is starting.
const startingHeader = "Mirrord-Starting"

// StartingHandler is what the daemon's socket serves until the store is
// open: /v1/status and /healthz answer (healthy, "starting: " and why),
// every other request fails with 503 and ErrStarting's message, so that a
// query waits for the daemon rather than opening the store itself.
func StartingHandler(store, version, why string) http.Handler {
	health := "starting: " + why
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, StatusResponse{
			Version: version, Store: store, Generators: []generators.Status{},
			Healthy: true, Health: health, Starting: true,
		})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, health)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(startingHeader, "1")
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%w: %s", ErrStarting, why))
	})
	return mux
}
