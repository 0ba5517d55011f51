package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"

	"github.com/espadmin/espadmin/cmd/espadmin/internal/config"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
)

// masterKeyCheck is the name of the master key's check in the database.
const masterKeyCheck = "master"

// errMasterKey marks a start refused because of the master key.
var errMasterKey = errors.New("master key")

// openMasterKey returns the master key and makes sure it is the database's: a key check (the
// key's ID and a known value sealed with it) is kept in the database, written at the first
// start, and every later start refuses a key that does not open it, before anything is sealed
// with the wrong key. A new key is generated into the data folder only for a database that
// holds nothing sealed yet (fresh: it had no schema before this start; or it has no device,
// project or tenant settings, the records that hold sealed values); a database that holds
// sealed data and has no key at hand is refused, since a new key could not open its secrets.
//
// Databases from before the key check get one at their first start with a key; that key is
// taken as theirs.
func openMasterKey(ctx context.Context, cfg config.Config, st store.Store, fresh bool, log *slog.Logger) ([]byte, error) {
	keyPath := absPath(filepath.Join(cfg.DataDir, seal.MasterKeyFile))
	source := keyPath
	if cfg.Security.MasterKey != "" {
		source = "ESPADMIN_MASTER_KEY (or ESPADMIN_MASTER_KEY_FILE)"
	}
	check, checkErr := st.KeyCheck(ctx, masterKeyCheck)
	if checkErr != nil && !errors.Is(checkErr, store.ErrNotFound) {
		return nil, fmt.Errorf("read the master key check from the database: %w", checkErr)
	}
	hasCheck := checkErr == nil

	key, err := seal.LoadMasterKey(cfg.DataDir, cfg.Security.MasterKey)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !hasCheck && !fresh {
			// Made by a command that creates accounts only (espadmin user create)? Then
			// nothing is sealed yet and a new key loses nothing.
			sealed, err := holdsSealedData(ctx, st)
			if err != nil {
				return nil, fmt.Errorf("look for sealed data in the database: %w", err)
			}
			fresh = !sealed
		}
		if hasCheck || !fresh {
			id := "unknown (the database predates key checks)"
			if hasCheck {
				id = check.KeyID
			}
			return nil, fmt.Errorf("%w missing: ESPADMIN_MASTER_KEY is not set and %s does not exist, "+
				"but the database already holds data sealed with master key %s; restore master.key from "+
				"your backup or set ESPADMIN_MASTER_KEY (a new key is generated only for an empty database)",
				errMasterKey, keyPath, id)
		}
		if key, err = seal.CreateMasterKey(cfg.DataDir); err != nil {
			return nil, err
		}
		log.Warn("generated a new master key; back it up with the database", "path", keyPath)
	case err != nil:
		return nil, err
	}

	if hasCheck {
		if err := seal.CheckKey(key, check.Sealed); err != nil {
			return nil, fmt.Errorf("%w: the key in %s does not open this database: %w; "+
				"set the master key the database was created with", errMasterKey, source, err)
		}
		return key, nil
	}
	id, sealed, err := seal.NewKeyCheck(key)
	if err != nil {
		return nil, err
	}
	err = st.CreateKeyCheck(ctx, &store.KeyCheck{Name: masterKeyCheck, KeyID: id.String(), Sealed: sealed})
	if errors.Is(err, store.ErrConflict) {
		// Another replica starting at the same time wrote its check first: ours must match.
		return openMasterKey(ctx, cfg, st, false, log)
	}
	if err != nil {
		return nil, fmt.Errorf("write the master key check to the database: %w", err)
	}
	log.Info("recorded the master key check in the database", "key_id", id.String())
	return key, nil
}

// holdsSealedData reports whether any tenant has a device, a project or saved settings: the
// records that carry values sealed with the master key (device keys, signing keys, secret
// config values, broker passwords and Bugsnag keys).
func holdsSealedData(ctx context.Context, st store.Store) (bool, error) {
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := st.ListTenants(ctx, opts)
		if err != nil {
			return false, err
		}
		for _, tn := range page.Items {
			n, err := st.CountDevices(ctx, tn.ID, store.DeviceFilter{})
			if err != nil || n > 0 {
				return n > 0, err
			}
			projects, err := st.ListProjects(ctx, tn.ID, store.ListOptions{Limit: 1})
			if err != nil || len(projects.Items) > 0 {
				return len(projects.Items) > 0, err
			}
			_, err = st.TenantSettings(ctx, tn.ID)
			if !errors.Is(err, store.ErrNotFound) {
				return err == nil, err
			}
		}
		if page.NextCursor == "" {
			return false, nil
		}
		opts.Cursor = page.NextCursor
	}
}
