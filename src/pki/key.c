/*
 * key: X25519 and Ed25519 keys on disk. See key.h.
 */
#include "pki/key.h"
#include "util/fs.h"
#include "util/mem.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define COHORT_KEY_FILE_MAX (64 * 1024)

static const char *s_type_name(cohort_key_type_t type)
{
    return type == COHORT_KEY_X25519 ? "X25519" : "Ed25519";
}

EVP_PKEY *cohort_key_generate(cohort_key_type_t type)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, s_type_name(type));
    if (!key)
        abort(); /* only on OOM or a broken OpenSSL install */
    return key;
}

bool cohort_key_is(const EVP_PKEY *key, cohort_key_type_t type)
{
    return key && EVP_PKEY_is_a(key, s_type_name(type));
}

/* Serialises with a memory BIO so the file write itself can be atomic. */
static int s_save(const char *path, EVP_PKEY *key, bool private_part, bool overwrite,
                  cohort_err_t *err)
{
    if (!overwrite && cohort_fs_exists(path))
        return cohort_err_set(err, "%s: already exists; refusing to overwrite a key", path);
    BIO *bio = BIO_new(BIO_s_secmem());
    if (!bio)
        abort();
    int ok = private_part ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
                          : PEM_write_bio_PUBKEY(bio, key);
    int rc = -1;
    if (!ok) {
        cohort_err_openssl(err, "%s: cannot encode key", path);
        goto out;
    }
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    rc = cohort_fs_write_atomic(path, data, (size_t)len, private_part ? 0600 : 0644, err);
out:
    BIO_free(bio); /* secmem BIO wipes its buffer */
    return rc;
}

int cohort_key_save_private(const char *path, EVP_PKEY *key, bool overwrite, cohort_err_t *err)
{
    return s_save(path, key, true, overwrite, err);
}

int cohort_key_save_public(const char *path, EVP_PKEY *key, cohort_err_t *err)
{
    return s_save(path, key, false, true, err);
}

int cohort_key_load_private(const char *path, cohort_key_type_t type, EVP_PKEY **out,
                            cohort_err_t *err)
{
    if (cohort_fs_check_private(path, err) < 0)
        return -1;
    char *buf = NULL;
    size_t len = 0;
    if (cohort_fs_read(path, COHORT_KEY_FILE_MAX, &buf, &len, err) < 0)
        return -1;
    int rc = -1;
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    if (!bio)
        abort();
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (!key) {
        cohort_err_openssl(err, "%s: not a PEM private key", path);
        goto out;
    }
    if (!cohort_key_is(key, type)) {
        cohort_err_set(err, "%s: expected an %s private key, got %s", path, s_type_name(type),
                       EVP_PKEY_get0_type_name(key));
        goto out;
    }
    *out = key;
    key = NULL;
    rc = 0;
out:
    EVP_PKEY_free(key);
    BIO_free(bio);
    cohort_free_secret(buf, len);
    return rc;
}

int cohort_key_load_public(const char *path, EVP_PKEY **out, cohort_err_t *err)
{
    char *buf = NULL;
    size_t len = 0;
    if (cohort_fs_read(path, COHORT_KEY_FILE_MAX, &buf, &len, err) < 0)
        return -1;
    int rc = -1;
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    if (!bio)
        abort();
    EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!key) {
        /* Accept a private key file too: its public half is what we want. */
        ERR_clear_error();
        BIO_reset(bio);
        key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    }
    if (!key) {
        cohort_err_openssl(err, "%s: not a PEM public key", path);
        goto out;
    }
    if (!cohort_key_is(key, COHORT_KEY_X25519)) {
        cohort_err_set(err, "%s: expected an X25519 public key, got %s", path,
                       EVP_PKEY_get0_type_name(key));
        goto out;
    }
    *out = key;
    key = NULL;
    rc = 0;
out:
    EVP_PKEY_free(key);
    BIO_free(bio);
    cohort_free_secret(buf, len);
    return rc;
}

void cohort_key_raw_public(const EVP_PKEY *key, uint8_t out[COHORT_KEY_LEN])
{
    size_t len = COHORT_KEY_LEN;
    int ok = EVP_PKEY_get_raw_public_key(key, out, &len);
    assert(ok == 1 && len == COHORT_KEY_LEN);
    (void)ok;
}

void cohort_key_raw_private(const EVP_PKEY *key, uint8_t out[COHORT_KEY_LEN])
{
    size_t len = COHORT_KEY_LEN;
    int ok = EVP_PKEY_get_raw_private_key(key, out, &len);
    assert(ok == 1 && len == COHORT_KEY_LEN);
    (void)ok;
}

void cohort_key_z85(const uint8_t key[COHORT_KEY_LEN], char out[COHORT_KEY_Z85_LEN + 1])
{
    zmq_z85_encode(out, key, COHORT_KEY_LEN);
}

bool cohort_key_from_z85(const char *text, uint8_t out[COHORT_KEY_LEN])
{
    if (strlen(text) != COHORT_KEY_Z85_LEN)
        return false;
    return zmq_z85_decode(out, text) != NULL;
}
