// stepca-init initialises a step-ca authority as `step ca init --deployment-type standalone`
// does, with step-ca's own pki package (the code `step ca init` calls), so that the tests need
// no `step` CLI. The files go under $STEPPATH: certs/root_ca.crt, certs/intermediate_ca.crt,
// secrets/*_key (encrypted with the password), config/ca.json (a JWK provisioner whose key is
// encrypted with the password, and optionally an ACME provisioner named "acme"), and
// config/defaults.json (with the root's fingerprint, which this program also prints).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/pki"
)

func main() {
	name := flag.String("name", "Phoenix Test", "the PKI's name")
	dns := flag.String("dns", "127.0.0.1", "the CA's DNS names and IPs, comma-separated")
	address := flag.String("address", "127.0.0.1:9000", "the address step-ca listens on")
	provisioner := flag.String("provisioner", "admin", "the JWK provisioner's name")
	passwordFile := flag.String("password-file", "", "file with the password for keys and provisioner")
	acme := flag.Bool("acme", false, "add an ACME provisioner named \"acme\"")
	flag.Parse()
	if os.Getenv("STEPPATH") == "" || *passwordFile == "" {
		fmt.Fprintln(os.Stderr, "stepca-init: set STEPPATH and -password-file")
		os.Exit(2)
	}
	raw, err := os.ReadFile(*passwordFile)
	if err != nil {
		fail(err)
	}
	pass := bytes.TrimRight(raw, "\r\n")
	opts := []pki.Option{
		pki.WithAddress(*address),
		pki.WithDNSNames(strings.Split(*dns, ",")),
		pki.WithProvisioner(*provisioner),
		pki.WithDeploymentType(pki.StandaloneDeployment),
	}
	if *acme {
		opts = append(opts, pki.WithACME())
	}
	p, err := pki.New(apiv1.Options{Type: apiv1.SoftCAS, IsCreator: true}, opts...)
	if err != nil {
		fail(err)
	}
	root, err := p.GenerateRootCertificate(*name, *name, *name, pass)
	if err != nil {
		fail(err)
	}
	if err := p.GenerateIntermediateCertificate(*name, *name, *name, root, pass); err != nil {
		fail(err)
	}
	if err := p.GenerateKeyPairs(pass); err != nil {
		fail(err)
	}
	// Save prints what it wrote on stdout; keep stdout for the fingerprint alone.
	stdout := os.Stdout
	os.Stdout = os.Stderr
	err = p.Save()
	os.Stdout = stdout
	if err != nil {
		fail(err)
	}
	fmt.Println(p.GetRootFingerprint())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "stepca-init:", err)
	os.Exit(1)
}
