"""The engine table of one-click databases as exact data: images, ports, env contracts, URLs, argv."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from berth_common import dbengines as d
from berth_common.images import DEFAULT_IMAGE_MAP, resolve_image

CREDS = d.Credentials("shop", "pa:ss/w@rd?#%", "orders")
REDIS = d.Credentials("", "pa:ss/w@rd", "0")


def test_the_engines_and_their_versions():
    assert list(d.ENGINES) == ["postgresql", "mysql", "mariadb", "redis", "mongodb"]
    assert {n: e.versions for n, e in d.ENGINES.items()} == {
        "postgresql": ("17", "16", "15", "14", "13"),
        "mysql": ("8.4", "8.0"),
        "mariadb": ("11.4", "10.11", "10.6"),
        "redis": ("7.4", "7.2", "7", "6.2"),
        "mongodb": ("8.0", "7.0", "6.0"),
    }
    for e in d.ENGINES.values():
        assert e.default_version in e.versions


@pytest.mark.parametrize(
    ("engine", "version", "image", "local"),
    [
        ("postgresql", "15", "postgres:15", "berth/postgres:15-bookworm"),
        ("postgresql", "16", "postgres:16", "postgres:16"),
        ("mariadb", "10.11", "mariadb:10.11", "berth/mariadb:10.11-bookworm"),
        ("mariadb", "11.4", "mariadb:11.4", "mariadb:11.4"),
        ("redis", "7", "redis:7", "berth/redis:7-bookworm"),
        ("redis", "7.4", "redis:7.4", "redis:7.4"),
        ("mysql", "8.4", "mysql:8.4", "mysql:8.4"),
        ("mongodb", "7.0", "mongo:7.0", "mongo:7.0"),
    ],
)
def test_official_images_and_the_local_ones_the_map_sends_them_to(engine, version, image, local):
    assert d.engine(engine).image(version) == image
    assert resolve_image(image, DEFAULT_IMAGE_MAP) == local


def test_a_version_or_an_engine_not_offered_is_refused():
    with pytest.raises(ValueError, match=r"PostgreSQL '9\.6' is not offered"):
        d.engine("postgresql").image("9.6")
    with pytest.raises(ValueError, match="unknown engine 'oracle'"):
        d.engine("oracle")


def test_ports_data_directories_and_link_variables():
    got = {n: (e.port, e.data_dir, e.variable) for n, e in d.ENGINES.items()}
    assert got == {
        "postgresql": (5432, "/var/lib/postgresql/data", "DATABASE_URL"),
        "mysql": (3306, "/var/lib/mysql", "DATABASE_URL"),
        "mariadb": (3306, "/var/lib/mysql", "DATABASE_URL"),
        "redis": (6379, "/data", "REDIS_URL"),
        "mongodb": (27017, "/data/db", "MONGODB_URL"),
    }


def test_container_environment_follows_each_official_image():
    assert d.container_env("postgresql", CREDS) == {
        "POSTGRES_USER": "shop",
        "POSTGRES_PASSWORD": "pa:ss/w@rd?#%",
        "POSTGRES_DB": "orders",
    }
    assert d.container_env("mariadb", CREDS) == {
        "MARIADB_ROOT_PASSWORD": "pa:ss/w@rd?#%",
        "MARIADB_DATABASE": "orders",
        "MARIADB_USER": "shop",
        "MARIADB_PASSWORD": "pa:ss/w@rd?#%",
    }
    assert d.container_env("mysql", CREDS) == {
        "MYSQL_ROOT_PASSWORD": "pa:ss/w@rd?#%",
        "MYSQL_DATABASE": "orders",
        "MYSQL_USER": "shop",
        "MYSQL_PASSWORD": "pa:ss/w@rd?#%",
    }
    assert d.container_env("mongodb", CREDS) == {
        "MONGO_INITDB_ROOT_USERNAME": "shop",
        "MONGO_INITDB_ROOT_PASSWORD": "pa:ss/w@rd?#%",
        "MONGO_INITDB_DATABASE": "orders",
    }
    assert d.container_env("redis", REDIS) == {}


def test_container_command_carries_the_validated_configuration():
    assert d.container_command("postgresql", CREDS) == []
    config = {"max_connections": "200", "shared_buffers": "256MB", "timezone": "Europe/Paris"}
    assert d.container_command("postgresql", CREDS, config) == [
        "-c",
        "max_connections=200",
        "-c",
        "shared_buffers=256MB",
        "-c",
        "timezone=Europe/Paris",
    ]
    assert d.container_command("mariadb", CREDS, {"max_connections": "50", "sql_mode": "STRICT_ALL_TABLES,ANSI"}) == [
        "--max-connections=50",
        "--sql-mode=STRICT_ALL_TABLES,ANSI",
    ]
    assert d.container_command("redis", REDIS, {"maxmemory": "256mb", "maxmemory-policy": "allkeys-lru"}) == [
        "redis-server",
        "--requirepass",
        "pa:ss/w@rd",
        "--maxmemory",
        "256mb",
        "--maxmemory-policy",
        "allkeys-lru",
    ]
    assert d.container_command("mongodb", CREDS, {"wiredTigerCacheSizeGB": "1"}) == ["--wiredTigerCacheSizeGB", "1"]


@pytest.mark.parametrize(
    ("engine", "name", "value"),
    [
        ("postgresql", "archive_command", "true"),  # not allow-listed: runs a command
        ("postgresql", "shared_preload_libraries", "x"),
        ("postgresql", "data_directory", "/tmp"),
        ("postgresql", "max_connections", "1 -c archive_command=x"),
        ("postgresql", "work_mem", "'4MB'"),
        ("postgresql", "work_mem", "-c"),
        ("postgresql", "work_mem", ""),
        ("postgresql", "Max_Connections", "10"),
        ("mariadb", "init_file", "/tmp/x.sql"),
        ("mariadb", "max_connections", "10\n"),
        ("redis", "requirepass", "x"),
        ("redis", "rename-command", "CONFIG"),
        ("redis", "maxmemory", "--requirepass"),
        ("mongodb", "bind_ip", "0.0.0.0"),
    ],
)
def test_configuration_outside_the_allow_list_or_with_a_bad_value_is_refused(engine, name, value):
    with pytest.raises(d.ConfigError) as info:
        d.validate_config(engine, {name: value})
    assert info.value.name == name


def test_configuration_values_accepted():
    ok = {"autovacuum_naptime": "30s", "statement_timeout": "-1", "random_page_cost": "1.1", "jit": "off"}
    assert d.validate_config("postgresql", ok) == ok


def test_connection_urls_escape_user_password_and_database():
    assert d.connection_url("postgresql", CREDS, "berth-db-x") == (
        "postgresql://shop:pa%3Ass%2Fw%40rd%3F%23%25@berth-db-x:5432/orders"
    )
    assert d.connection_url("mariadb", CREDS, "db.internal", 13306) == (
        "mysql://shop:pa%3Ass%2Fw%40rd%3F%23%25@db.internal:13306/orders"
    )
    assert d.connection_url("mysql", CREDS, "h") == "mysql://shop:pa%3Ass%2Fw%40rd%3F%23%25@h:3306/orders"
    assert d.connection_url("redis", REDIS, "h") == "redis://default:pa%3Ass%2Fw%40rd@h:6379/0"
    assert d.connection_url("mongodb", CREDS, "h") == (
        "mongodb://shop:pa%3Ass%2Fw%40rd%3F%23%25@h:27017/orders?authSource=admin"
    )


def test_readiness_argv_with_the_password_in_the_exec_environment():
    assert d.readiness("postgresql", CREDS) == d.Exec(
        ("pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432", "-U", "shop", "-d", "orders")
    )
    assert d.readiness("mariadb", CREDS) == d.Exec(
        ("mariadb-admin", "ping", "--silent", "-h", "127.0.0.1", "-P", "3306", "-u", "shop"),
        env=(("MYSQL_PWD", "pa:ss/w@rd?#%"),),
    )
    assert d.readiness("mysql", CREDS).argv[0] == "mysqladmin"
    assert d.readiness("redis", REDIS) == d.Exec(
        ("redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"), env=(("REDISCLI_AUTH", "pa:ss/w@rd"),), expect="PONG"
    )
    assert d.readiness("mongodb", CREDS) == d.Exec(
        ("mongosh", "--quiet", "--port", "27017", "--eval", "db.adminCommand('ping').ok"), expect="1"
    )
    assert "pa:ss" not in repr(d.readiness("redis", REDIS)) and "pa:ss" not in repr(CREDS)


def test_scram_verifier_is_postgres_stored_form():
    salt = bytes(range(16))
    got = d.scram_sha_256("secret", salt)
    salted = hashlib.pbkdf2_hmac("sha256", b"secret", salt, 4096)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    assert got == f"SCRAM-SHA-256$4096:{b64(salt).decode()}${b64(stored).decode()}:{b64(server).decode()}"
    assert d.mysql_native_hash("new") == "*6FE2B845E049CDA9EFED8CFAF265CD29622FD852"


def test_password_change_argv_carries_no_plaintext_where_the_engine_takes_a_hash():
    salt = b"\x00" * 16
    pg = d.change_password("postgresql", d.Credentials('sh"op', "old", "orders"), "n'ew", salt)
    verifier = d.scram_sha_256("n'ew", salt)
    assert pg == d.Exec(
        (
            "psql",
            "-X",
            "-q",
            "-h",
            "/var/run/postgresql",
            "-U",
            'sh"op',
            "-d",
            "orders",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f'ALTER ROLE "sh""op" PASSWORD \'{verifier}\'',
        )
    )
    maria = d.change_password("mariadb", d.Credentials("sh'op", "old", "orders"), "new")
    h = "'*6FE2B845E049CDA9EFED8CFAF265CD29622FD852'"
    assert maria == d.Exec(
        (
            "mariadb",
            "-uroot",
            "-h",
            "localhost",
            "-e",
            f"SET PASSWORD FOR 'sh''op'@'%' = {h}; SET PASSWORD FOR 'root'@'%' = {h}; "
            f"ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING {h}",
        ),
        env=(("MYSQL_PWD", "old"),),
    )
    assert "new" not in " ".join(maria.argv)
    assert d.change_password("redis", REDIS, "n3w") == d.Exec(
        ("redis-cli", "-h", "127.0.0.1", "-p", "6379", "CONFIG", "SET", "requirepass", "n3w"),
        env=(("REDISCLI_AUTH", "pa:ss/w@rd"),),
        expect="OK",
    )
    assert d.change_password("mysql", CREDS, "n3w").argv == (
        "mysql",
        "-uroot",
        "-h",
        "localhost",
        "-e",
        "ALTER USER 'shop'@'%' IDENTIFIED BY 'n3w'; ALTER USER 'root'@'%' IDENTIFIED BY 'n3w'; "
        "ALTER USER 'root'@'localhost' IDENTIFIED BY 'n3w'",
    )


def test_names_of_a_database_on_an_engine():
    db_id = "0123456789abcdef0123456789abcdef"
    assert d.container_name(db_id) == "berth-db-0123456789abcdef0123456789abcdef"
    assert d.volume_name(db_id) == "berth-db-0123456789abcdef0123456789abcdef-data"
    assert d.team_network(db_id) == "berth-team-0123456789abcdef0123456789abcdef"
    for bad in ("x", "../etc", db_id.upper(), db_id + "0"):
        with pytest.raises(ValueError):
            d.container_name(bad)
    assert d.default_names("orders-db") == ("orders_db", "orders_db")
    assert d.default_names("9lives") == ("db_9lives", "db_9lives")


def test_generated_credentials_are_fresh_and_long():
    a, b = d.generate_credentials("postgresql", "orders"), d.generate_credentials("postgresql", "orders")
    assert a.password != b.password and len(a.password) == 32 and (a.user, a.database) == ("orders", "orders")
    r = d.generate_credentials("redis", "cache")
    assert (r.user, r.database) == ("", "0")
