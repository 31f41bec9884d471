##! MISP's domain rule for Zeek's Intel framework: a name is also looked up as each of its parent domains, so an
##! Intel::DOMAIN item from `iocmatch export --format zeek` matches the domain and every subdomain of it, as the
##! MISP `domain` type means and as iocmatch's own scorer matches. Zeek alone matches Intel::DOMAIN exactly.
##!
##! Load it after the intel framework, for example in local.zeek:
##!   @load frameworks/intel/seen
##!   @load ./iocmatch-domain-suffix.zeek
##!   redef Intel::read_files += { "/etc/zeek/iocmatch.intel" };
##!
##! The name itself is looked up by Zeek's own seen scripts; this script adds the parents with at least two labels
##! (`a.b.evil.com` also tries `b.evil.com` and `evil.com`, never `com`). Hits for a parent appear in intel.log with
##! the parent as `seen.indicator` and the usual `seen.where` (DNS::IN_REQUEST, HTTP::IN_HOST_HEADER,
##! SSL::IN_SERVER_NAME).

@load base/frameworks/intel
@load policy/frameworks/intel/seen/where-locations

module IocmatchDomainSuffix;

export {
	## Looks up every parent domain of `name` (two labels or more) as an Intel::DOMAIN.
	global seen_parents: function(name: string, c: connection, where: Intel::Where);
}

function seen_parents(name: string, c: connection, where: Intel::Where)
	{
	local labels = split_string(to_lower(name), /\./);
	local n = |labels|;
	local i = 1;
	while ( i + 1 < n )
		{
		Intel::seen(Intel::Seen($indicator=join_string_vec(labels[i:], "."),
		                        $indicator_type=Intel::DOMAIN,
		                        $conn=c,
		                        $where=where));
		++i;
		}
	}

event dns_request(c: connection, msg: dns_msg, query: string, qtype: count, qclass: count)
	{
	seen_parents(query, c, DNS::IN_REQUEST);
	}

event http_header(c: connection, is_orig: bool, name: string, value: string)
	{
	if ( ! is_orig || name != "HOST" )
		return;
	local host = gsub(value, /:[[:digit:]]+$/, "");
	if ( ! is_valid_ip(host) )
		seen_parents(host, c, HTTP::IN_HOST_HEADER);
	}

event ssl_extension_server_name(c: connection, is_orig: bool, names: string_vec)
	{
	if ( ! is_orig )
		return;
	for ( i in names )
		seen_parents(names[i], c, SSL::IN_SERVER_NAME);
	}
