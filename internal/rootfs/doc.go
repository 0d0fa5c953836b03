// Package rootfs builds Debian root filesystems from the machine's own apt
// sources, for the test bed's servers that the host does not have: a
// PgBouncer from another Debian suite run under chroot, or the tarball
// that docker import turns into an image where no registry can be reached.
//
// A build runs mmdebstrap (Debian package mmdebstrap) once per Spec and
// keeps the result in a cache keyed by the spec's content and the apt
// sources it was built from, so a second build, in the same run or a later
// one, costs nothing:
//
//	tar, err := rootfs.Tarball(ctx, rootfs.Spec{Suite: "trixie", Packages: []string{"pgbouncer"}})
//	dir, err := rootfs.Dir(ctx, spec) // the same, unpacked, for chroot
//
// Nothing is downloaded from anywhere but the apt sources the machine
// already uses (/etc/apt/sources.list.d/*.sources); their suite names are
// rewritten to the spec's suite. Building needs root, as mmdebstrap's root
// mode and chroot do.
package rootfs
